# LocalStack with Docker and a licence (Lambda, API Gateway, WAFv2, Batch, ECR and X-Ray need
# both). The free edition without Docker applies the model_store, network and observability
# modules only: see examples/model_store_only.
#   terraform apply -var-file=environments/localstack.tfvars

region       = "us-east-1"
emulator_url = "http://127.0.0.1:4566"

access_key                  = "test"
secret_key                  = "test"
skip_credentials_validation = true
skip_metadata_api_check     = true
skip_requesting_account_id  = true
s3_use_path_style           = true

# LocalStack has no provisioned concurrency for Lambda functions run in Docker.
provisioned_concurrency = 0

force_destroy = true
