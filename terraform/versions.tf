terraform {
  required_version = ">= 1.9"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }

  # State stays local by default. For a shared deployment add a backend, e.g.:
  # backend "s3" { bucket = "...", key = "inferstack/terraform.tfstate", region = "...", use_lockfile = true }
}
