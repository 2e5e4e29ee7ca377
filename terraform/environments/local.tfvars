# The moto emulator on this machine. The URL is chosen at start-up, so it is given then:
#   terraform apply -var-file=environments/local.tfvars -var emulator_url=http://127.0.0.1:<port>
# Start moto with MOTO_IAM_LOAD_MANAGED_POLICIES=true and POST
# {"lambda":{"use_docker":false},"batch":{"use_docker":false}} to /moto-api/config first.

region = "us-east-1"

# The local runner runs the deployed zips natively, as Lambda runs them (the layer's compiled
# wheels load on their own architecture only): the local stack is built for these x86_64
# machines. The arm64 artifacts run under qemu in their own test.
architecture = "x86_64"

# Every service the stack uses goes to emulator_url; fake credentials, no AWS look-ups.
emulator_services           = ["apigateway", "batch", "cloudwatch", "ec2", "ecr", "events", "iam", "kms", "lambda", "logs", "s3", "sns", "sqs", "sts", "wafv2", "xray"]
access_key                  = "test"
secret_key                  = "test"
skip_credentials_validation = true
skip_metadata_api_check     = true
s3_use_path_style           = true
# The account id is asked of the emulator's STS (123456789012): without it the provider writes
# security group references as "<account>/sg-..." and every plan shows a change.
skip_requesting_account_id = false

# moto gaps (documented in DESIGN.md), each on for AWS:
provisioned_concurrency   = 0     # no provisioned concurrency API
create_xray_sampling_rule = false # no X-Ray API
enable_tls_only_policy    = false # object calls answer 403 once a TLS-only policy is attached
# moto sets the API Gateway account's CloudWatch role, but answers 500 to the value-less patch
# that resets it on destroy (KeyError in moto.apigateway Account.apply_patch_operations), and it
# needs no role for a stage's logging.
create_api_gateway_account = false
create_batch_service_role  = true # CreateComputeEnvironment refuses a request without serviceRole

# A throw-away emulator: let destroy remove non-empty buckets.
force_destroy = true

# The local SQS event source mapping gathers batches as Lambda does, for the configured window:
# a short one keeps the demo and the integration tests from waiting out AWS's 30 s default.
batch = {
  dispatcher = { maximum_batching_window_seconds = 5 }
}
