output "function_urls" {
  description = "URL of each function (private: callers need roles/run.invoker and an ID token)."
  value       = { for name, fn in google_cloudfunctions2_function.function : name => fn.service_config[0].uri }
}

output "instance_connection_name" {
  description = "Cloud SQL instance connection name (project:region:instance), for migrations."
  value       = google_sql_database_instance.main.connection_name
}

output "function_db_users" {
  description = "IAM database users of the functions: pass them comma-separated as PLANT_APP_DB_USERS to the migration."
  value       = local.db_users
}

output "migrator_db_user" {
  description = "IAM database user of the migration service account (Cloud Build runs migrations as it)."
  value       = local.migrator
}

output "migrator_service_account" {
  description = "Service account Cloud Build impersonates to run migrations."
  value       = google_service_account.migrator.email
}

output "anchor_bucket" {
  description = "Bucket holding the write-once checkpoint anchors."
  value       = google_storage_bucket.anchors.name
}

output "signing_key_secret" {
  description = "Secret holding the signing keyring JSON (add versions with gcloud; never via Terraform)."
  value       = google_secret_manager_secret.signing_key.id
}

output "report_signing_key_secret" {
  description = "Secret holding the report-signing key JSON (add versions with gcloud; never via Terraform)."
  value       = google_secret_manager_secret.report_signing_key.id
}

output "identity_map_secret" {
  description = "Secret holding the identity map JSON (caller email -> tenant and roles)."
  value       = google_secret_manager_secret.identity_map.id
}

output "scheduler_identities" {
  description = "Service account of each tenant's scheduled audit: map each to {tenant, roles: [auditor]} in the identity map."
  value       = { for t, sa in google_service_account.auditor : t => sa.email }
}
