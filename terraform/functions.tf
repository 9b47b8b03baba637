data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.build/source.zip"
  excludes = [
    ".venv", ".data", ".git", ".ci", "tests", "bench", "terraform", "docs",
    ".pytest_cache", ".ruff_cache", ".hypothesis",
    # native/ goes as source (requirements.txt builds it); not a local build's leftovers
    "native/build", "native/plant_map_native.egg-info",
  ]
}

resource "google_storage_bucket_object" "source" {
  name   = "source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.source.output_path
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions
  name     = "${var.name_prefix}-${each.key}"
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = each.value.entry_point
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    timeout_seconds                  = each.value.timeout
    max_instance_count               = 20
    max_instance_request_concurrency = 8
    available_cpu                    = each.value.cpu
    ingress_settings                 = var.ingress
    service_account_email            = google_service_account.function[each.key].email
    vpc_connector                    = var.vpc_connector
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"
    all_traffic_on_latest_revision   = true

    environment_variables = merge(
      {
        PLANT_ENV                     = "cloud"
        INSTANCE_CONNECTION_NAME      = google_sql_database_instance.main.connection_name
        DB_NAME                       = google_sql_database.registry.name
        DB_IAM_USER                   = local.db_users[each.key]
        DB_PRIVATE_IP                 = "1"
        PLANT_DB_POOL_SIZE            = "8"
        PLANT_AUDIT_WORKERS           = each.value.cpu
        THREADS                       = "8"
        PLANT_TRUST_PLATFORM_IDENTITY = "1"
        PLANT_TOKEN_AUDIENCE          = "${var.name_prefix}-${each.key}"
        PLANT_ANCHOR_BUCKET           = google_storage_bucket.anchors.name
        PLANT_LOG_ORIGIN_PREFIX       = var.log_origin_prefix
        PLANT_MIRROR_BUCKET           = google_storage_bucket.mirror.name
        PLANT_WITNESS_TIMEOUT_SECONDS = tostring(var.witness_timeout_seconds)
      },
      var.witnesses != "" ? { PLANT_WITNESSES = var.witnesses } : {},
      each.value.signs ? {
        PLANT_SIGNING_KEY_SECRET = "${google_secret_manager_secret.signing_key.id}/versions/latest"
      } : {},
      each.value.reports ? {
        PLANT_REPORT_SIGNING_SECRET = "${google_secret_manager_secret.report_signing_key.id}/versions/latest"
      } : {},
    )

    secret_environment_variables {
      key        = "PLANT_IDENTITY_MAP"
      project_id = var.project_id
      secret     = google_secret_manager_secret.identity_map.secret_id
      version    = "latest"
    }
  }

  depends_on = [
    google_secret_manager_secret_iam_member.identity_map,
    google_secret_manager_secret_iam_member.signing_key,
    google_secret_manager_secret_iam_member.report_signing_key,
  ]
}
