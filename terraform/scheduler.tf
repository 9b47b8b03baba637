# One scheduler identity per audited tenant: the identity map gives each its tenant and the
# auditor role. Cloud Scheduler signs each call with an OIDC token for that identity.
resource "google_service_account" "auditor" {
  for_each     = toset(var.audit_tenants)
  account_id   = "${var.name_prefix}-aud-${substr(md5(each.value), 0, 10)}"
  display_name = "Plant registry scheduled audits of ${each.value}"
}

resource "google_cloud_run_service_iam_member" "auditor_invokes_audit" {
  for_each = toset(var.audit_tenants)
  location = var.region
  service  = google_cloudfunctions2_function.function["audit"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.auditor[each.value].email}"
}

resource "google_cloud_scheduler_job" "audit" {
  for_each  = toset(var.audit_tenants)
  name      = "${var.name_prefix}-audit-${each.value}"
  region    = var.region
  schedule  = var.audit_schedule
  time_zone = var.audit_time_zone

  retry_config {
    retry_count = 3
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.function["audit"].service_config[0].uri}/runs"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ mode = "incremental" }))

    oidc_token {
      service_account_email = google_service_account.auditor[each.value].email
      audience              = google_cloudfunctions2_function.function["audit"].service_config[0].uri
    }
  }
}

# The embeddings refresh (issue 28): creates never embed a skill, so each audited tenant's
# stale skills are embedded by the registry every embeddings_refresh_schedule, with the same
# identity (the auditor role). A vector is at most one period plus one run behind its skill.
resource "google_cloud_run_service_iam_member" "auditor_invokes_registry" {
  for_each = toset(var.audit_tenants)
  location = var.region
  service  = google_cloudfunctions2_function.function["registry"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.auditor[each.value].email}"
}

resource "google_cloud_scheduler_job" "embeddings_refresh" {
  for_each  = toset(var.audit_tenants)
  name      = "${var.name_prefix}-embeddings-${each.value}"
  region    = var.region
  schedule  = var.embeddings_refresh_schedule
  time_zone = var.audit_time_zone

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.function["registry"].service_config[0].uri}/skills/embeddings/refresh"

    oidc_token {
      service_account_email = google_service_account.auditor[each.value].email
      audience              = google_cloudfunctions2_function.function["registry"].service_config[0].uri
    }
  }
}

# Sealing by schedule (issue 24): each audited tenant's log is sealed every minute by default,
# so its latest map commit, and any current-version proof served from it, is at most
# seal_schedule's period old. The same identity (auditor role) calls POST /log/seal.
resource "google_cloud_run_service_iam_member" "auditor_invokes_log" {
  for_each = toset(var.audit_tenants)
  location = var.region
  service  = google_cloudfunctions2_function.function["log"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.auditor[each.value].email}"
}

resource "google_cloud_scheduler_job" "seal" {
  for_each  = toset(var.audit_tenants)
  name      = "${var.name_prefix}-seal-${each.value}"
  region    = var.region
  schedule  = var.seal_schedule
  time_zone = var.audit_time_zone

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.function["log"].service_config[0].uri}/seal"

    oidc_token {
      service_account_email = google_service_account.auditor[each.value].email
      audience              = google_cloudfunctions2_function.function["log"].service_config[0].uri
    }
  }
}
