# One service account per function: each holds only what its function needs.
resource "google_service_account" "function" {
  for_each     = local.functions
  account_id   = "${var.name_prefix}-fn-${each.key}"
  display_name = "Plant registry ${each.key} function"
}

resource "google_service_account" "migrator" {
  account_id   = "${var.name_prefix}-migrator"
  display_name = "Plant registry migrations (Cloud Build)"
}

resource "google_project_iam_member" "function_sql_client" {
  for_each = local.functions
  project  = var.project_id
  role     = "roles/cloudsql.client"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_project_iam_member" "function_sql_login" {
  for_each = local.functions
  project  = var.project_id
  role     = "roles/cloudsql.instanceUser"
  member   = "serviceAccount:${google_service_account.function[each.key].email}"
}

resource "google_project_iam_member" "migrator_sql" {
  for_each = toset(["roles/cloudsql.client", "roles/cloudsql.instanceUser"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.migrator.email}"
}

# Who may call each function: the configured members (the scheduler's are in scheduler.tf).
resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = { for pair in flatten([
    for fn, members in var.invokers : [for m in members : { fn = fn, member = m }]
  ]) : "${pair.fn}/${pair.member}" => pair }
  location = var.region
  service  = google_cloudfunctions2_function.function[each.value.fn].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value.member
}
