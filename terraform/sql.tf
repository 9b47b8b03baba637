resource "google_sql_database_instance" "main" {
  name                = "${var.name_prefix}-registry"
  database_version    = var.database_version
  region              = var.region
  deletion_protection = true

  settings {
    tier              = var.database_tier
    availability_type = "REGIONAL"

    ip_configuration {
      # Private IP only: the functions reach it through the VPC connector and the
      # Cloud SQL Python Connector, which presents an ephemeral client certificate.
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7
      backup_retention_settings {
        retained_backups = 30
      }
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
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

    insights_config {
      query_insights_enabled = true
    }
  }
}

resource "google_sql_database" "registry" {
  name     = "plant"
  instance = google_sql_database_instance.main.name
}

# One IAM database user per function service account; the migration step makes each a member
# of the plant_app role (PLANT_APP_DB_USERS) and nothing more.
resource "google_sql_user" "function" {
  for_each = local.functions
  name     = local.db_users[each.key]
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

resource "google_sql_user" "migrator" {
  name     = local.migrator
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
