# Copy to environments/aws.tfvars, adjust, then:
#   terraform apply -var-file=environments/aws.tfvars
# Credentials come from the usual chain (AWS_PROFILE, SSO, instance role); nothing here.

# region      = "eu-west-1"
# name_prefix = "inferstack"
# tags        = { Owner = "ml-platform", CostCenter = "1234" }

# architecture = "arm64"      # Graviton: layer-arm64.zip (make build) and a linux/arm64 worker image
#                             # (the README's push steps read `terraform output -raw worker_image_platform`)
# runtime      = "python3.13"

# Real-time function.
# The defaults deploy in a new account (reduced Lambda quotas): 3008 MB, nothing reserved or
# provisioned. Raise them once the account's quotas allow (Service Quotas console):
# predict = {
#   memory_size          = 3538 # 2 full vCPUs for the interpreter (new accounts: at most 3008)
#   timeout              = 30
#   reserved_concurrency = 50   # needs unreserved concurrency above the minimum of 100
# }
# provisioned_concurrency = 2 # warm environments with the model loaded, billed while idle; 0 = off

# create_api_gateway_account = false # when the account already has its API Gateway CloudWatch role

# api = {
#   authorization          = "AWS_IAM" # SigV4-signed requests (execute-api) besides the API key
#   throttling_rate_limit  = 100
#   throttling_burst_limit = 200
#   quota_limit            = 1000000
#   quota_period           = "MONTH"
# }
# enable_waf = true
# waf = { rate_limit = 2000 }

# Network: a new private VPC with endpoints (default), or bring your own.
# Subnets go to the lowest-numbered zone IDs that offer every interface endpoint the stack
# creates (terraform output availability_zone_ids); pin them to keep them where they are.
# network = {
#   vpc_cidr                       = "10.42.0.0/16"
#   az_count                       = 3
#   availability_zone_ids          = ["euw1-az1", "euw1-az2", "euw1-az3"]
#   additional_interface_endpoints = ["kms"] # only what your own code in the VPC calls
# }
# network = {
#   create_vpc      = false
#   vpc_id          = "vpc-0123456789abcdef0"
#   subnet_ids      = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
#   route_table_ids = ["rtb-0123456789abcdef0"]
# }

# Batch on Fargate. The job definition runs `terraform output -raw worker_image`:
# <the stack's ECR repository>:<worker_image_tag> (default: the version in pyproject.toml).
# Tags are immutable: give each new build of the worker its own tag, e.g. the commit id.
# batch = {
#   worker_image_tag = "0.1.0"
#   # or an image of your own, pinned by tag or digest (private ECR: pull permission is granted):
#   # worker_image   = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/inferstack-worker@sha256:<digest>"
#   images_per_child = 500
#   job              = { vcpu = 2, memory = 4096, timeout = 3600, attempts = 3 }
#   compute          = { max_vcpus = 64 }
# }

# log_retention_days    = 365
# alarm_email_addresses = ["oncall@example.com"]
