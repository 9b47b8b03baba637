# A witness of our own (functions/witness.py, C2SP tlog-witness), deployed by whoever
# witnesses the log: its own project, service account, key (a Secret Manager secret whose
# value never passes through Terraform) and database (its own Cloud SQL instance), so the
# registry's operator holds nothing of it. The same source archive as the registry's (its
# entry point "witness" in main.py). Logs POST add-checkpoint with no token (the log's
# signature authenticates them): the witness is reachable by var.invokers only unless the
# operator of the witness opens it (ingress, invoker) on purpose.

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

resource "google_service_account" "witness" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-witness"
  display_name = "Plant registry witness"
}

resource "google_secret_manager_secret" "witness_key" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-witness-key"
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = var.kms_key
        }
      }
    }
  }
}

resource "google_secret_manager_secret_iam_member" "witness_key" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.witness_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.witness.email}"
}

resource "google_sql_database_instance" "witness" {
  project             = var.project_id
  name                = "${var.name_prefix}-witness"
  region              = var.region
  database_version    = "POSTGRES_18" # the newest major, as the registry's (CKV_GCP_79)
  deletion_protection = true
  settings {
    tier = var.database_tier
    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
    }
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    # The registry's own logging flags (terraform/sql.tf): the witness's state is evidence too.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
  }
}

resource "google_sql_database" "witness" {
  project  = var.project_id
  name     = "witness"
  instance = google_sql_database_instance.witness.name
}

resource "google_sql_user" "witness" {
  project  = var.project_id
  name     = trimsuffix(google_service_account.witness.email, ".gserviceaccount.com")
  instance = google_sql_database_instance.witness.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

resource "google_project_iam_member" "witness_sql" {
  for_each = toset(["roles/cloudsql.client", "roles/cloudsql.instanceUser"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.witness.email}"
}

resource "google_cloudfunctions2_function" "witness" {
  project  = var.project_id
  name     = "${var.name_prefix}-witness"
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = "witness"
    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    available_memory                 = "256Mi"
    timeout_seconds                  = 30
    max_instance_count               = 5
    max_instance_request_concurrency = 8
    ingress_settings                 = var.ingress
    service_account_email            = google_service_account.witness.email
    vpc_connector                    = var.vpc_connector
    vpc_connector_egress_settings    = "PRIVATE_RANGES_ONLY"
    environment_variables = {
      PLANT_ENV                = "cloud"
      INSTANCE_CONNECTION_NAME = google_sql_database_instance.witness.connection_name
      DB_NAME                  = google_sql_database.witness.name
      DB_IAM_USER              = google_sql_user.witness.name
      DB_PRIVATE_IP            = "1"
      THREADS                  = "8"
      PLANT_DB_POOL_SIZE       = "8"
      PLANT_WITNESS_KEY_SECRET = "${google_secret_manager_secret.witness_key.id}/versions/latest"
      PLANT_WITNESS_LOGS       = var.logs
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.witness_key]
}

resource "google_cloud_run_service_iam_member" "invoker" {
  for_each = toset(var.invokers)
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.witness.name
  role     = "roles/run.invoker"
  member   = each.value
}
