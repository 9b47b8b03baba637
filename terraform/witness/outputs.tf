output "url" {
  description = "The witness prefix logs configure (POST <url>/witness/add-checkpoint is served at <url>/add-checkpoint by Cloud Functions; see docs/deploy.md)."
  value       = google_cloudfunctions2_function.witness.service_config[0].uri
}

output "key_secret" {
  description = "Add the witness key with gcloud secrets versions add (JSON {name, seed}); publish its vkey."
  value       = google_secret_manager_secret.witness_key.id
}
