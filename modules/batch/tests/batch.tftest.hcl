# Plans and (mocked) applies of modules/batch without any AWS account or emulator.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = {
      name = "eu-west-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_resource "aws_s3_bucket" {
    defaults = {
      arn = "arn:aws:s3:::demo-data-123456789012"
      id  = "demo-data-123456789012"
    }
  }
  mock_resource "aws_sqs_queue" {
    defaults = {
      arn = "arn:aws:sqs:eu-west-1:123456789012:demo-s3-events"
      id  = "https://sqs.eu-west-1.amazonaws.com/123456789012/demo-s3-events"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/demo"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock"
    }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn = "arn:aws:lambda:eu-west-1:123456789012:function:demo-dispatcher"
    }
  }
  mock_resource "aws_batch_compute_environment" {
    defaults = {
      arn = "arn:aws:batch:eu-west-1:123456789012:compute-environment/demo-fargate"
    }
  }
  mock_resource "aws_batch_job_queue" {
    defaults = {
      arn = "arn:aws:batch:eu-west-1:123456789012:job-queue/demo-jobs"
    }
  }
  mock_resource "aws_batch_job_definition" {
    defaults = {
      arn        = "arn:aws:batch:eu-west-1:123456789012:job-definition/demo-worker:1"
      arn_prefix = "arn:aws:batch:eu-west-1:123456789012:job-definition/demo-worker"
    }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:eu-west-1:123456789012:repository/demo-worker"
      repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo-worker"
    }
  }
}

variables {
  name_prefix         = "demo"
  kms_key_arn         = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  dispatcher_zip_path = "tests/fixtures/dispatcher.zip"
  layer_arns          = ["arn:aws:lambda:eu-west-1:123456789012:layer:demo-runtime-arm64:1"]
  subnet_ids          = ["subnet-0123456789abcdef0"]
  security_group_ids  = ["sg-0123456789abcdef0"]
  model_uri           = "s3://demo-models/models/resnet50-int8/1/"
  model_bucket_arn    = "arn:aws:s3:::demo-models"
  worker_image_tag    = "1.0.0"
  tags                = { Project = "inferstack" }
}

run "defaults" {
  # Mocked apply so that ARNs and the job definition JSON are known.

  assert {
    condition     = aws_s3_bucket.data.bucket == "demo-data-123456789012" && !aws_s3_bucket.data.force_destroy
    error_message = "default bucket name is <prefix>-data-<account>"
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.data.rule).bucket_key_enabled && one(one(aws_s3_bucket_server_side_encryption_configuration.data.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "SSE-KMS with a bucket key expected"
  }
  assert {
    condition     = aws_s3_bucket_versioning.data.versioning_configuration[0].status == "Enabled" && aws_s3_bucket_public_access_block.data.restrict_public_buckets && aws_s3_bucket_ownership_controls.data.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "versioning, public access block and ownership controls expected"
  }
  assert {
    condition     = length(aws_s3_bucket_policy.data) == 1 && length(aws_s3_bucket_logging.data) == 0
    error_message = "TLS-only policy on by default, no access logging without a target"
  }
  assert {
    condition     = toset([for r in aws_s3_bucket_lifecycle_configuration.data.rule : r.id]) == toset(["abort-incomplete-uploads-and-old-versions", "expire-output", "expire-manifests"])
    error_message = "lifecycle: abort/noncurrent + output and manifests expiry (input kept) by default"
  }
  assert {
    condition     = one([for r in aws_s3_bucket_lifecycle_configuration.data.rule : r.expiration[0].days if r.id == "expire-output"]) == 90 && one([for r in aws_s3_bucket_lifecycle_configuration.data.rule : r.filter[0].prefix if r.id == "expire-manifests"]) == "manifests/"
    error_message = "expiry days/prefixes wrong"
  }
  assert {
    condition     = aws_sqs_queue.events.sqs_managed_sse_enabled && aws_sqs_queue.events.visibility_timeout_seconds == 720
    error_message = "queue: SQS-managed SSE, visibility 6 x dispatcher timeout"
  }
  assert {
    condition     = jsondecode(aws_sqs_queue_redrive_policy.events.redrive_policy).maxReceiveCount == 5 && jsondecode(aws_sqs_queue_redrive_policy.events.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq.arn
    error_message = "redrive to the DLQ after 5 receives"
  }
  assert {
    condition     = one(aws_s3_bucket_notification.data.queue).filter_prefix == "input/" && one(aws_s3_bucket_notification.data.queue).events == toset(["s3:ObjectCreated:*"])
    error_message = "ObjectCreated under input/ must reach the queue"
  }
  assert {
    condition     = aws_lambda_function.dispatcher.handler == "inferstack_dispatcher.handler.lambda_handler" && aws_lambda_function.dispatcher.architectures == tolist(["arm64"]) && aws_lambda_function.dispatcher.layers == tolist(var.layer_arns)
    error_message = "dispatcher handler/architecture/layers"
  }
  assert {
    condition = aws_lambda_function.dispatcher.environment[0].variables == tomap({
      DATA_BUCKET                  = "demo-data-123456789012"
      INPUT_PREFIX                 = "input/"
      OUTPUT_PREFIX                = "output/"
      MANIFEST_PREFIX              = "manifests/"
      IMAGE_SUFFIXES               = ".jpg,.jpeg,.png,.webp,.bmp,.gif"
      IMAGES_PER_CHILD             = "500"
      MAX_ARRAY_SIZE               = "10000"
      JOB_QUEUE                    = "arn:aws:batch:eu-west-1:123456789012:job-queue/demo-jobs"
      JOB_DEFINITION               = "arn:aws:batch:eu-west-1:123456789012:job-definition/demo-worker"
      POWERTOOLS_SERVICE_NAME      = "inferstack-dispatcher"
      POWERTOOLS_METRICS_NAMESPACE = "Inferstack"
      LOG_LEVEL                    = "INFO"
    })
    error_message = "dispatcher environment differs from the contract"
  }
  assert {
    condition     = length(aws_lambda_function.dispatcher.vpc_config) == 0 && aws_lambda_function.dispatcher.tracing_config[0].mode == "Active"
    error_message = "dispatcher outside the VPC with X-Ray by default"
  }
  assert {
    condition     = aws_lambda_function.dispatcher.reserved_concurrent_executions == -1 && aws_lambda_event_source_mapping.dispatcher.scaling_config[0].maximum_concurrency == 5
    error_message = "the dispatcher reserves no concurrency (a new account has no room for it); the SQS mapping bounds it to 5"
  }
  assert {
    condition     = length(aws_iam_role_policy.dispatcher_vpc_access) == 0
    error_message = "no ENI permissions outside a VPC"
  }
  assert {
    condition     = aws_lambda_event_source_mapping.dispatcher.function_response_types == toset(["ReportBatchItemFailures"]) && aws_lambda_event_source_mapping.dispatcher.batch_size == 100 && aws_lambda_event_source_mapping.dispatcher.maximum_batching_window_in_seconds == 30
    error_message = "event source mapping must report partial batch failures"
  }
  assert {
    condition     = aws_batch_compute_environment.fargate.type == "MANAGED" && aws_batch_compute_environment.fargate.compute_resources[0].type == "FARGATE" && aws_batch_compute_environment.fargate.compute_resources[0].max_vcpus == 64
    error_message = "managed Fargate compute environment"
  }
  assert {
    condition     = length(aws_iam_role.batch_service) == 0 && length(aws_iam_role_policy_attachment.batch_service) == 0 && output.batch_service_role_arn == null
    error_message = "on AWS the compute environment uses the service-linked role: no explicit Batch service role"
  }
  assert {
    condition     = aws_batch_job_queue.this.compute_environment_order[0].compute_environment == aws_batch_compute_environment.fargate.arn
    error_message = "job queue must use the compute environment"
  }
  assert {
    condition     = aws_batch_job_definition.worker.platform_capabilities == toset(["FARGATE"]) && aws_batch_job_definition.worker.propagate_tags
    error_message = "Fargate job definition with propagated tags"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).command == ["inferstack-worker", "--manifest", "Ref::manifest"]
    error_message = "worker command"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo-worker:1.0.0" && output.worker_image == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo-worker:1.0.0"
    error_message = "the job runs, and the worker_image output names, the module's repository at worker_image_tag"
  }
  assert {
    condition     = output.worker_image_platform == "linux/arm64"
    error_message = "an ARM64 job definition needs a linux/arm64 image"
  }
  assert {
    condition = (
      jsondecode(aws_batch_job_definition.worker.container_properties).readonlyRootFilesystem == true
      && jsondecode(aws_batch_job_definition.worker.container_properties).volumes == [{ name = "scratch" }]
      && jsondecode(aws_batch_job_definition.worker.container_properties).mountPoints == [{ sourceVolume = "scratch", containerPath = "/tmp", readOnly = false }]
    )
    error_message = "read-only root file system with one writable scratch volume at /tmp"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "PullWorkerImage"]) == toset(["arn:aws:ecr:eu-west-1:123456789012:repository/demo-worker"]) && output.worker_image_repository_arn == "arn:aws:ecr:eu-west-1:123456789012:repository/demo-worker"
    error_message = "the execution role pulls only from the module's repository"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).resourceRequirements == [{ type = "VCPU", value = "2" }, { type = "MEMORY", value = "4096" }]
    error_message = "default 2 vCPU / 4096 MiB"
  }
  assert {
    condition = {
      for e in jsondecode(aws_batch_job_definition.worker.container_properties).environment : e.name => e.value
      } == {
      MODEL_URI                    = "s3://demo-models/models/resnet50-int8/1/"
      DATA_BUCKET                  = "demo-data-123456789012"
      OUTPUT_PREFIX                = "output/"
      IMAGES_PER_CHILD             = "500"
      POWERTOOLS_SERVICE_NAME      = "inferstack-batch-worker"
      POWERTOOLS_METRICS_NAMESPACE = "Inferstack"
    }
    error_message = "worker environment differs from the contract"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).networkConfiguration.assignPublicIp == "DISABLED" && jsondecode(aws_batch_job_definition.worker.container_properties).fargatePlatformConfiguration.platformVersion == "LATEST" && jsondecode(aws_batch_job_definition.worker.container_properties).runtimePlatform.cpuArchitecture == "ARM64"
    error_message = "no public IP, LATEST platform, ARM64"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).logConfiguration.options["awslogs-group"] == "/aws/batch/demo-worker"
    error_message = "worker logs go to the module's log group"
  }
  assert {
    condition     = aws_batch_job_definition.worker.retry_strategy[0].attempts == 3 && length(aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit) == 5 && aws_batch_job_definition.worker.timeout[0].attempt_duration_seconds == 3600
    error_message = "3 attempts with 5 exit conditions and a 1 h attempt timeout"
  }
  assert {
    condition     = [for c in aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit : c.action] == ["RETRY", "EXIT", "EXIT", "EXIT", "RETRY"] && [for c in aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit : coalesce(c.on_exit_code, "-")] == ["-", "65", "78", "2", "-"] && aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit[4].on_reason == "*" && aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit[0].on_status_reason == "Host EC2*"
    error_message = "exit on the worker's no-retry codes (65, 78, 2); retry everything else, a killed or crashed worker included"
  }
  assert {
    condition     = aws_ecr_repository.worker[0].image_tag_mutability == "IMMUTABLE" && aws_ecr_repository.worker[0].image_scanning_configuration[0].scan_on_push && aws_ecr_repository.worker[0].encryption_configuration[0].encryption_type == "KMS"
    error_message = "ECR: scan on push, KMS, immutable tags by default"
  }
  assert {
    condition     = length(jsondecode(aws_ecr_lifecycle_policy.worker[0].policy).rules) == 2
    error_message = "ECR lifecycle policy expected"
  }
  assert {
    condition     = output.log_group_names == { dispatcher = "/aws/lambda/demo-dispatcher", worker = "/aws/batch/demo-worker" }
    error_message = "log_group_names"
  }
  assert {
    condition     = aws_sqs_queue.events.tags["Project"] == "inferstack" && aws_batch_job_definition.worker.tags["Project"] == "inferstack" && aws_s3_bucket.data.tags["Project"] == "inferstack"
    error_message = "tags must reach the resources"
  }
}

run "iam_is_scoped" {
  assert {
    condition     = one([for s in data.aws_iam_policy_document.dispatcher.statement : s.resources if s.sid == "SubmitWorkerJobs"]) == toset(["arn:aws:batch:eu-west-1:123456789012:job-queue/demo-jobs", "arn:aws:batch:eu-west-1:123456789012:job-definition/demo-worker", "arn:aws:batch:eu-west-1:123456789012:job-definition/demo-worker:*"])
    error_message = "SubmitJob only on the queue and the worker job definition"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.dispatcher.statement : s.resources if s.sid == "ReadWriteManifests"]) == toset(["arn:aws:s3:::demo-data-123456789012/manifests/*"])
    error_message = "dispatcher writes only manifests/"
  }
  assert {
    # tests/unit/test_dispatcher_permissions.py checks these against the calls the code makes.
    condition     = !contains(flatten([for s in data.aws_iam_policy_document.dispatcher.statement : s.actions]), "s3:ListBucket") && one([for s in data.aws_iam_policy_document.dispatcher.statement : s.actions if s.sid == "FindExistingJobs"]) == toset(["batch:ListJobs"])
    error_message = "the dispatcher never lists the bucket nor describes jobs"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.job.statement : s.resources if s.sid == "ReadWriteOutput"]) == toset(["arn:aws:s3:::demo-data-123456789012/output/*"])
    error_message = "worker writes only output/"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.job.statement : s.resources if s.sid == "ReadModelBundle"]) == toset(["arn:aws:s3:::demo-models/models/resnet50-int8/1/*"])
    error_message = "worker reads only the model prefix"
  }
  assert {
    condition = alltrue(flatten([
      for d in [data.aws_iam_policy_document.dispatcher, data.aws_iam_policy_document.job, data.aws_iam_policy_document.execution] : [
        for s in d.statement : [for a in s.actions : a != "*" && !endswith(a, ":*")]
      ]
    ]))
    error_message = "no wildcard actions"
  }
  assert {
    condition = alltrue(flatten([
      for d in [data.aws_iam_policy_document.dispatcher, data.aws_iam_policy_document.job, data.aws_iam_policy_document.execution] : [
        for s in d.statement : contains(["FindExistingJobs", "XRayWrite", "EcrLogin"], s.sid) || !contains(tolist(s.resources), "*")
      ]
    ]))
    error_message = "only ListJobs/DescribeJobs, X-Ray and the ECR login may use a * resource"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.events_queue.statement : s.principals]) != null && length([for s in data.aws_iam_policy_document.events_queue.statement : s if length([for c in s.condition : c if c.variable == "aws:SourceArn"]) == 1]) == 1
    error_message = "the queue policy must be limited to the data bucket"
  }
}

run "switches" {
  command = plan

  variables {
    enable_tls_only_policy = false
    enable_xray_tracing    = false
    architecture           = "x86_64"
    runtime                = "python3.13"
    create_ecr_repository  = false
    worker_image           = "public.ecr.aws/example/inferstack-worker:1.0.0"
    data_bucket = {
      name                  = "my-inferstack-data"
      force_destroy         = true
      input_expiration_days = 7
      access_log_bucket     = "my-access-logs"
    }
    queue = {
      encryption                 = "KMS"
      visibility_timeout_seconds = 900
      max_receive_count          = 2
    }
    dispatcher = {
      in_vpc               = true
      reserved_concurrency = -1
      maximum_concurrency  = 0
    }
    job = {
      vcpu     = 4
      memory   = 8192
      attempts = 1
      timeout  = 600
    }
    compute = {
      max_vcpus = 16
      use_spot  = true
    }
  }

  assert {
    condition     = length(aws_s3_bucket_policy.data) == 0 && aws_s3_bucket.data.bucket == "my-inferstack-data" && aws_s3_bucket.data.force_destroy
    error_message = "bucket switches ignored"
  }
  assert {
    condition     = aws_s3_bucket_logging.data[0].target_bucket == "my-access-logs"
    error_message = "access logging target ignored"
  }
  assert {
    condition     = contains([for r in aws_s3_bucket_lifecycle_configuration.data.rule : r.id], "expire-input")
    error_message = "input expiry ignored"
  }
  assert {
    condition     = aws_sqs_queue.events.kms_master_key_id == var.kms_key_arn && aws_sqs_queue.events.visibility_timeout_seconds == 900
    error_message = "KMS queue encryption / visibility timeout ignored"
  }
  assert {
    condition     = aws_lambda_function.dispatcher.vpc_config[0].subnet_ids == toset(var.subnet_ids) && length(aws_iam_role_policy.dispatcher_vpc_access) == 1
    error_message = "dispatcher in VPC ignored"
  }
  assert {
    condition     = toset(flatten([for s in data.aws_iam_policy_document.dispatcher_vpc_access[0].statement : s.actions])) == toset(["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"])
    error_message = "the dispatcher's VPC policy grants exactly the ENI actions Lambda needs (no log writes on *)"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.dispatcher_vpc_access[0].statement : s.resources if s.sid == "CreateInterfaceInOwnSubnets"]) == toset(["arn:aws:ec2:eu-west-1:123456789012:network-interface/*", "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef0", "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef0"])
    error_message = "interfaces may be created only in the given subnets with the given security groups"
  }
  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.dispatcher_vpc_access[0].statement : s.sid == "DescribeNetwork" || !contains(tolist(s.resources), "*")])
    error_message = "only the Describe actions may use a * resource"
  }
  assert {
    condition     = aws_lambda_function.dispatcher.reserved_concurrent_executions == -1 && length(aws_lambda_event_source_mapping.dispatcher.scaling_config) == 0
    error_message = "maximum_concurrency = 0 must drop the mapping's scaling config"
  }
  assert {
    condition     = aws_lambda_function.dispatcher.tracing_config[0].mode == "PassThrough" && aws_lambda_function.dispatcher.architectures == tolist(["x86_64"]) && aws_lambda_function.dispatcher.runtime == "python3.13"
    error_message = "tracing/architecture/runtime switches ignored"
  }
  assert {
    condition     = length(aws_ecr_repository.worker) == 0 && length(aws_ecr_lifecycle_policy.worker) == 0
    error_message = "no repository with create_ecr_repository = false"
  }
  assert {
    condition     = length([for s in data.aws_iam_policy_document.execution.statement : s if startswith(s.sid, "Ecr") || s.sid == "PullWorkerImage"]) == 0 && output.worker_image_repository_arn == null
    error_message = "a public image needs no ECR permission"
  }
  assert {
    condition     = output.worker_image_platform == "linux/amd64"
    error_message = "an X86_64 job definition needs a linux/amd64 image"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).image == "public.ecr.aws/example/inferstack-worker:1.0.0" && jsondecode(aws_batch_job_definition.worker.container_properties).runtimePlatform.cpuArchitecture == "X86_64"
    error_message = "worker_image / architecture ignored"
  }
  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).resourceRequirements == [{ type = "VCPU", value = "4" }, { type = "MEMORY", value = "8192" }]
    error_message = "job resources ignored"
  }
  assert {
    condition     = aws_batch_job_definition.worker.retry_strategy[0].attempts == 1 && length(aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit) == 0 && aws_batch_job_definition.worker.timeout[0].attempt_duration_seconds == 600
    error_message = "one attempt needs no exit conditions"
  }
  assert {
    condition     = aws_batch_compute_environment.fargate.compute_resources[0].type == "FARGATE_SPOT" && aws_batch_compute_environment.fargate.compute_resources[0].max_vcpus == 16
    error_message = "compute switches ignored"
  }
}

run "spot_retries_interruptions" {
  command = plan

  variables {
    compute = {
      use_spot = true
    }
  }

  assert {
    condition     = aws_batch_job_definition.worker.retry_strategy[0].evaluate_on_exit[0].on_status_reason == "Your Spot Task was interrupted*"
    error_message = "Spot interruptions must be retried"
  }
}

run "explicit_batch_service_role_for_emulators" {
  variables {
    create_batch_service_role = true
  }

  assert {
    condition     = aws_batch_compute_environment.fargate.service_role == aws_iam_role.batch_service[0].arn && output.batch_service_role_arn == aws_iam_role.batch_service[0].arn
    error_message = "create_batch_service_role passes the explicit role to the compute environment"
  }
  assert {
    condition     = endswith(aws_iam_role_policy_attachment.batch_service[0].policy_arn, ":iam::aws:policy/service-role/AWSBatchServiceRole")
    error_message = "the explicit role carries the AWS managed Batch service policy"
  }
}

run "private_ecr_image_of_another_account_pinned_by_digest" {
  command = plan

  variables {
    create_ecr_repository = false
    worker_image          = "210987654321.dkr.ecr.us-east-2.amazonaws.com/team/inferstack-worker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }

  assert {
    condition     = jsondecode(aws_batch_job_definition.worker.container_properties).image == var.worker_image
    error_message = "a digest-pinned image runs as given"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "PullWorkerImage"]) == toset(["arn:aws:ecr:us-east-2:210987654321:repository/team/inferstack-worker"])
    error_message = "the execution role may pull from the brought image's repository, derived from its URI"
  }
  assert {
    condition     = length([for s in data.aws_iam_policy_document.execution.statement : s if s.sid == "EcrLogin"]) == 1
    error_message = "pulling from private ECR needs the registry login"
  }
}

run "private_ecr_image_with_tag_and_digest" {
  command = plan

  variables {
    worker_image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/other-worker:2.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  }

  assert {
    condition     = one([for s in data.aws_iam_policy_document.execution.statement : s.resources if s.sid == "PullWorkerImage"]) == toset(["arn:aws:ecr:eu-west-1:123456789012:repository/other-worker"])
    error_message = "the grant follows the image actually run, not the module's unused repository"
  }
}

###############################################################################
# Validation failures
###############################################################################

run "rejects_bad_name_prefix" {
  command = plan
  variables {
    name_prefix = "-bad"
  }
  expect_failures = [var.name_prefix]
}

run "rejects_bad_kms_arn" {
  command = plan
  variables {
    kms_key_arn = "alias/x"
  }
  expect_failures = [var.kms_key_arn]
}

run "rejects_fargate_combination" {
  command = plan
  variables {
    job = {
      vcpu   = 1
      memory = 1024
    }
  }
  expect_failures = [var.job]
}

run "rejects_odd_vcpu" {
  command = plan
  variables {
    job = {
      vcpu   = 3
      memory = 8192
    }
  }
  expect_failures = [var.job]
}

run "rejects_zero_attempts" {
  command = plan
  variables {
    job = {
      attempts = 0
    }
  }
  expect_failures = [var.job]
}

run "rejects_short_timeout" {
  command = plan
  variables {
    job = {
      timeout = 30
    }
  }
  expect_failures = [var.job]
}

run "rejects_compute_smaller_than_a_child" {
  command = plan
  variables {
    compute = {
      max_vcpus = 1
    }
  }
  expect_failures = [var.compute]
}

run "rejects_array_size_1" {
  command = plan
  variables {
    max_array_size = 1
  }
  expect_failures = [var.max_array_size]
}

run "rejects_zero_images_per_child" {
  command = plan
  variables {
    images_per_child = 0
  }
  expect_failures = [var.images_per_child]
}

run "rejects_no_subnets" {
  command = plan
  variables {
    subnet_ids = []
  }
  expect_failures = [var.subnet_ids]
}

run "rejects_bad_security_group" {
  command = plan
  variables {
    security_group_ids = ["default"]
  }
  expect_failures = [var.security_group_ids]
}

run "rejects_bucket_mismatch" {
  command = plan
  variables {
    model_bucket_arn = "arn:aws:s3:::other"
  }
  expect_failures = [var.model_bucket_arn]
}

run "rejects_model_uri_without_slash" {
  command = plan
  variables {
    model_uri = "s3://demo-models/models"
  }
  expect_failures = [var.model_uri]
}

run "rejects_bad_bucket_name" {
  command = plan
  variables {
    data_bucket = {
      name = "My_Bucket"
    }
  }
  expect_failures = [var.data_bucket]
}

run "rejects_manifests_expiring_within_a_day" {
  command = plan
  variables {
    data_bucket = {
      manifest_expiration_days = 1
    }
  }
  expect_failures = [var.data_bucket]
}

run "rejects_bad_queue_encryption" {
  command = plan
  variables {
    queue = {
      encryption = "NONE"
    }
  }
  expect_failures = [var.queue]
}

run "rejects_big_batch_without_window" {
  command = plan
  variables {
    dispatcher = {
      batch_size                      = 100
      maximum_batching_window_seconds = 0
    }
  }
  expect_failures = [var.dispatcher]
}

run "rejects_unversioned_layer" {
  command = plan
  variables {
    layer_arns = ["arn:aws:lambda:eu-west-1:123456789012:layer:deps"]
  }
  expect_failures = [var.layer_arns]
}

run "rejects_missing_image_without_repository" {
  command = plan
  variables {
    create_ecr_repository = false
  }
  expect_failures = [var.worker_image]
}

run "rejects_latest_tag" {
  command = plan
  variables {
    worker_image_tag = "latest"
  }
  expect_failures = [var.worker_image_tag]
}

run "rejects_no_tag_and_no_image" {
  command = plan
  variables {
    worker_image_tag = null
  }
  expect_failures = [var.worker_image_tag]
}

run "rejects_bad_tag" {
  command = plan
  variables {
    worker_image_tag = "-v1"
  }
  expect_failures = [var.worker_image_tag]
}

run "rejects_untagged_image" {
  command = plan
  variables {
    worker_image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo-worker"
  }
  expect_failures = [var.worker_image]
}

run "rejects_latest_image" {
  command = plan
  variables {
    worker_image = "public.ecr.aws/example/inferstack-worker:latest"
  }
  expect_failures = [var.worker_image]
}

run "rejects_short_digest" {
  command = plan
  variables {
    worker_image = "public.ecr.aws/example/inferstack-worker@sha256:0123"
  }
  expect_failures = [var.worker_image]
}

run "rejects_bad_architecture" {
  command = plan
  variables {
    architecture = "aarch64"
  }
  expect_failures = [var.architecture]
}

run "rejects_python311" {
  command = plan
  variables {
    runtime = "python3.11"
  }
  expect_failures = [var.runtime]
}

run "rejects_bad_retention" {
  command = plan
  variables {
    log_retention_days = 10
  }
  expect_failures = [var.log_retention_days]
}

run "model_pin_and_telemetry_names" {
  # The deployed model's checksum reaches the worker, and the metric names the module is told
  # to use are the ones its code emits and the ones its `telemetry` output hands on.
  variables {
    model_sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    telemetry    = { namespace = "Custom", worker_service = "custom-worker" }
  }

  assert {
    condition = {
      for e in jsondecode(aws_batch_job_definition.worker.container_properties).environment : e.name => e.value
      if startswith(e.name, "MODEL_SHA256") || startswith(e.name, "POWERTOOLS_")
      } == {
      MODEL_SHA256                 = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
      POWERTOOLS_SERVICE_NAME      = "custom-worker"
      POWERTOOLS_METRICS_NAMESPACE = "Custom"
    }
    error_message = "the worker must get the pinned sha256 and the telemetry names"
  }
  assert {
    condition     = aws_lambda_function.dispatcher.environment[0].variables["POWERTOOLS_SERVICE_NAME"] == "inferstack-dispatcher" && aws_lambda_function.dispatcher.environment[0].variables["POWERTOOLS_METRICS_NAMESPACE"] == "Custom"
    error_message = "the dispatcher must get the telemetry names"
  }
  assert {
    condition     = output.telemetry == { namespace = "Custom", dispatcher_service = "inferstack-dispatcher", worker_service = "custom-worker" }
    error_message = "telemetry output must hand on exactly what the code is told to emit"
  }
}

run "model_sha256_must_be_hex" {
  command = plan
  variables {
    model_sha256 = "not-a-checksum"
  }
  expect_failures = [var.model_sha256]
}

run "dispatcher_reserved_concurrency_opt_in" {
  command = plan
  variables {
    dispatcher = {
      reserved_concurrency = 10
      maximum_concurrency  = 10
    }
  }
  assert {
    condition     = aws_lambda_function.dispatcher.reserved_concurrent_executions == 10 && aws_lambda_event_source_mapping.dispatcher.scaling_config[0].maximum_concurrency == 10
    error_message = "a reservation stays possible as an opt-in"
  }
}

run "rejects_dispatcher_maximum_concurrency_over_reserved" {
  command = plan
  variables {
    dispatcher = {
      reserved_concurrency = 3
      maximum_concurrency  = 5
    }
  }
  expect_failures = [var.dispatcher]
}

run "rejects_dispatcher_maximum_concurrency_below_two" {
  command = plan
  variables {
    dispatcher = {
      maximum_concurrency = 1
    }
  }
  expect_failures = [var.dispatcher]
}

run "additional_model_uris_widen_only_the_model_grants" {
  command = plan
  variables {
    additional_model_uris = ["s3://demo-models/models/resnet50-int8/2/"]
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.job.statement : s.resources if s.sid == "ReadModelBundle"]) == toset(["arn:aws:s3:::demo-models/models/resnet50-int8/1/*", "arn:aws:s3:::demo-models/models/resnet50-int8/2/*"])
    error_message = "the worker reads the model prefix and the additional one, nothing else"
  }
  assert {
    condition     = toset(flatten([for s in data.aws_iam_policy_document.job.statement : [for c in s.condition : c.values] if s.sid == "ListModelPrefix"])) == toset(["models/resnet50-int8/1/*", "models/resnet50-int8/2/*"])
    error_message = "the worker lists the model prefix and the additional one only"
  }
  assert {
    # The job definition keeps the deployed model; a job names another one by overrides.
    condition     = contains(jsondecode(aws_batch_job_definition.worker.container_properties).environment, { name = "MODEL_URI", value = "s3://demo-models/models/resnet50-int8/1/" })
    error_message = "the job definition's MODEL_URI stays model_uri"
  }
}

run "rejects_additional_model_uri_in_another_bucket" {
  command = plan
  variables {
    additional_model_uris = ["s3://other-models/models/x/1/"]
  }
  expect_failures = [var.additional_model_uris]
}

run "rejects_additional_model_uri_without_prefix" {
  command = plan
  variables {
    additional_model_uris = ["s3://demo-models/"]
  }
  expect_failures = [var.additional_model_uris]
}
