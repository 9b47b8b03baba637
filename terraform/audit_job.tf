# A full audit beyond one machine (issue 27): for each tenant in audit_job_tenants, a Cloud Run
# job whose audit_job_tasks parallel tasks each run `plant audit --part` over their share of
# the log (CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT) and write it to the anchor bucket;
# `--then-merge` makes the task that finds every part written merge them into one recorded
# run. The tasks run as the audit function's service account, with its database user,
# signing key and anchor bucket bindings (iam.tf, secrets.tf, storage.tf): nothing new to
# grant. Created only once audit_job_image names the image holding this repository.
locals {
  audit_job_tenants = var.audit_job_image == "" ? toset([]) : toset(var.audit_job_tenants)
  audit_job_env = merge(
    {
      PLANT_ENV                = "cloud"
      INSTANCE_CONNECTION_NAME = google_sql_database_instance.main.connection_name
      DB_NAME                  = google_sql_database.registry.name
      DB_IAM_USER              = local.db_users["audit"]
      DB_PRIVATE_IP            = "1"
      PLANT_AUDIT_WORKERS      = var.audit_job_cpu
      PLANT_ANCHOR_BUCKET      = google_storage_bucket.anchors.name
      PLANT_LOG_ORIGIN_PREFIX  = var.log_origin_prefix
      PLANT_MIRROR_BUCKET      = google_storage_bucket.mirror.name
      PLANT_SIGNING_KEY_SECRET = "${google_secret_manager_secret.signing_key.id}/versions/latest"
    },
    var.witnesses != "" ? { PLANT_WITNESSES = var.witnesses } : {},
  )
}

resource "google_cloud_run_v2_job" "audit_parts" {
  for_each            = local.audit_job_tenants
  name                = "${var.name_prefix}-audit-parts-${each.value}"
  location            = var.region
  deletion_protection = false

  template {
    task_count  = var.audit_job_tasks
    parallelism = var.audit_job_tasks

    template {
      service_account = google_service_account.function["audit"].email
      timeout         = "${var.audit_job_timeout_seconds}s"
      max_retries     = 1

      vpc_access {
        connector = var.vpc_connector
        egress    = "PRIVATE_RANGES_ONLY"
      }

      containers {
        image   = var.audit_job_image
        command = ["python", "-m", "shared.cli.commands"] # `plant`, with no console script needed
        args    = ["audit", "--tenant", each.value, "--then-merge", "--as", "audit-job"]

        resources {
          limits = { cpu = var.audit_job_cpu, memory = var.audit_job_memory }
        }

        dynamic "env" {
          for_each = local.audit_job_env
          content {
            name  = env.key
            value = env.value
          }
        }
      }
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.signing_key,
    google_storage_bucket_iam_member.anchor_writer,
    google_storage_bucket_iam_member.anchor_reader,
    google_storage_bucket_iam_member.mirror_writer,
  ]
}

# Cloud Scheduler starts an execution (POST .../jobs/<job>:run) with an OAuth token of its own
# identity, which may run these jobs and nothing else.
resource "google_service_account" "audit_job_trigger" {
  count        = length(local.audit_job_tenants) > 0 ? 1 : 0
  account_id   = "${var.name_prefix}-audit-jobs"
  display_name = "Plant registry: starts the audit-in-parts jobs"
}

resource "google_cloud_run_v2_job_iam_member" "trigger_runs_audit_parts" {
  for_each = google_cloud_run_v2_job.audit_parts
  location = var.region
  name     = each.value.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.audit_job_trigger[0].email}"
}

resource "google_cloud_scheduler_job" "audit_parts" {
  for_each  = google_cloud_run_v2_job.audit_parts
  name      = "${var.name_prefix}-audit-parts-${each.key}"
  region    = var.region
  schedule  = var.audit_job_schedule
  time_zone = var.audit_time_zone

  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/${each.value.name}:run"

    oauth_token {
      service_account_email = google_service_account.audit_job_trigger[0].email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_cloud_run_v2_job_iam_member.trigger_runs_audit_parts]
}
