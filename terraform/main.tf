# inferstack: the real-time API and the batch path over one model bundle, composed from the
# modules in ../modules. Run `terraform apply -var-file=environments/<env>.tfvars`.

locals {
  tags = merge({ Project = "inferstack", ManagedBy = "terraform" }, var.tags)

  # Build outputs of the project (layers/build.py, `inferstack model build`) unless overridden.
  dist                = "${path.root}/../build/dist"
  predict_zip_path    = coalesce(var.predict_zip_path, "${local.dist}/predict.zip")
  dispatcher_zip_path = coalesce(var.dispatcher_zip_path, "${local.dist}/dispatcher.zip")
  layer_zip_path      = coalesce(var.layer_zip_path, "${local.dist}/layer-${var.architecture}.zip")
  model_bundle_dir    = coalesce(var.model_bundle_dir, "${path.root}/../build/model/resnet50-int8")

  # The worker image's default tag: the project's version (pyproject.toml). The repository's
  # tags are immutable, so a changed worker is pushed under a new batch.worker_image_tag.
  project_version = regex("(?m)^version\\s*=\\s*\"([^\"]+)\"", file("${path.root}/../pyproject.toml"))[0]

  # The one CloudWatch namespace of the functions' and the worker's EMF metrics. The service
  # names come from the modules that emit them (their `telemetry` outputs), so the alarms and
  # the dashboard always watch what the code is told to emit.
  metric_namespace = "Inferstack"
}

module "model_store" {
  source = "../modules/model_store"

  name_prefix            = var.name_prefix
  tags                   = local.tags
  model_bundle_dir       = local.model_bundle_dir
  candidate_bundle_dir   = try(var.canary.bundle_dir, null)
  enable_tls_only_policy = var.enable_tls_only_policy
  force_destroy          = var.force_destroy
}

# Interface endpoints are billed per zone-hour, so the VPC gets only those that a component running
# in it calls at run time; the S3 gateway endpoint (free) is always there.
# - predict function: none. Its logs, EMF metrics and X-Ray traces leave through the Lambda
#   service, not its network interface, and S3 decrypts SSE-KMS objects itself (no kms).
# - Batch jobs on Fargate: ecr.api and ecr.dkr to pull the worker image (layers come from S3),
#   logs for the awslogs driver.
# - dispatcher: outside the VPC here (the batch module's dispatcher.in_vpc, left at false). In
#   the VPC it would need batch (SubmitJob); its SQS messages are polled by the Lambda service.
locals {
  vpc_components = {
    predict      = { in_vpc = true, endpoints = [] }
    batch_worker = { in_vpc = true, endpoints = ["ecr.api", "ecr.dkr", "logs"] }
    dispatcher   = { in_vpc = false, endpoints = ["batch"] }
  }
  interface_endpoints = var.network.interface_endpoints != null ? var.network.interface_endpoints : distinct(concat(
    flatten([for c in values(local.vpc_components) : c.endpoints if c.in_vpc]),
    var.network.additional_interface_endpoints,
  ))
}

module "network" {
  source = "../modules/network"

  name_prefix           = var.name_prefix
  tags                  = local.tags
  create_vpc            = var.network.create_vpc
  vpc_cidr              = var.network.vpc_cidr
  az_count              = var.network.az_count
  availability_zone_ids = var.network.availability_zone_ids
  excluded_zone_ids     = var.network.excluded_zone_ids
  vpc_id                = var.network.vpc_id
  subnet_ids            = var.network.subnet_ids
  route_table_ids       = var.network.route_table_ids
  create_vpc_endpoints  = var.network.create_vpc_endpoints
  interface_endpoints   = local.interface_endpoints
  # The S3 gateway endpoint reaches the model and data buckets only (and ECR's image layers).
  s3_bucket_arns   = [module.model_store.bucket_arn, module.batch.data_bucket_arn]
  enable_flow_logs = var.network.enable_flow_logs
  flow_logs = {
    retention_days = var.log_retention_days
    kms_key_arn    = module.model_store.kms_key_arn
  }
}

module "realtime_api" {
  source = "../modules/realtime_api"

  name_prefix       = var.name_prefix
  tags              = local.tags
  function_zip_path = local.predict_zip_path
  layer_zip_path    = local.layer_zip_path
  architecture      = var.architecture
  runtime           = var.runtime
  # The project's own build always writes the layer's manifest: without one, the zip predates it.
  require_layer_manifest = var.layer_zip_path == null

  memory_size             = var.predict.memory_size
  timeout                 = var.predict.timeout
  reserved_concurrency    = var.predict.reserved_concurrency
  provisioned_concurrency = var.provisioned_concurrency
  enable_xray_tracing     = var.predict.enable_xray_tracing
  log_level               = var.predict.log_level

  model_uri        = module.model_store.model_uri
  model_sha256     = module.model_store.model_sha256
  model_bucket_arn = module.model_store.bucket_arn
  kms_key_arn      = module.model_store.kms_key_arn
  telemetry        = { namespace = local.metric_namespace }
  # A canary rollout: the candidate bundle on var.canary.weight of the live alias' requests.
  canary = var.canary == null ? null : {
    model_uri    = module.model_store.candidate.uri
    model_sha256 = module.model_store.candidate.sha256
    weight       = var.canary.weight
  }

  subnet_ids         = module.network.subnet_ids
  security_group_ids = [module.network.lambda_security_group_id]

  api                        = var.api
  create_api_gateway_account = var.create_api_gateway_account
  enable_waf                 = var.enable_waf
  waf                        = var.waf
  log_retention_days         = var.log_retention_days
}

module "batch" {
  source = "../modules/batch"

  name_prefix = var.name_prefix
  tags        = local.tags
  kms_key_arn = module.model_store.kms_key_arn

  data_bucket = {
    force_destroy = var.force_destroy
  }
  enable_tls_only_policy = var.enable_tls_only_policy

  dispatcher_zip_path = local.dispatcher_zip_path
  layer_arns          = [module.realtime_api.layer_arn]
  architecture        = var.architecture
  runtime             = var.runtime

  subnet_ids         = module.network.subnet_ids
  security_group_ids = [module.network.batch_security_group_id]

  model_uri        = module.model_store.model_uri
  model_sha256     = module.model_store.model_sha256
  model_bucket_arn = module.model_store.bucket_arn
  telemetry        = { namespace = local.metric_namespace }
  # During a canary the workers may also read the candidate (inferstack batch submit --model-uri).
  additional_model_uris = var.canary == null ? [] : [module.model_store.candidate.uri]

  worker_image_tag          = coalesce(var.batch.worker_image_tag, local.project_version)
  worker_image              = var.batch.worker_image
  create_batch_service_role = var.create_batch_service_role
  images_per_child          = var.batch.images_per_child
  max_array_size            = var.batch.max_array_size
  job                       = var.batch.job
  compute                   = var.batch.compute
  dispatcher                = var.batch.dispatcher

  log_retention_days = var.log_retention_days
}

module "observability" {
  source = "../modules/observability"

  name_prefix           = var.name_prefix
  tags                  = local.tags
  kms_key_arn           = module.model_store.kms_key_arn
  alarm_email_addresses = var.alarm_email_addresses

  api_name                 = module.realtime_api.api_name
  api_stage_name           = module.realtime_api.stage_name
  predict_function_name    = module.realtime_api.function_name
  predict_log_group_name   = module.realtime_api.log_group_names["function"]
  dispatcher_function_name = module.batch.dispatcher_function_name
  queue_name               = module.batch.queue_name
  dlq_name                 = module.batch.dlq_name
  job_queue_name           = module.batch.job_queue_name
  job_queue_arn            = module.batch.job_queue_arn

  # What the functions and the worker emit, from the modules that configure them.
  metric_namespace = local.metric_namespace
  realtime_metrics = { service = module.realtime_api.telemetry.service }
  batch_metrics = {
    dispatcher_service = module.batch.telemetry.dispatcher_service
    worker_service     = module.batch.telemetry.worker_service
  }

  # The candidate's alarms during a canary rollout (its model against the primary's).
  canary = var.canary == null ? null : {
    primary_sha256   = module.model_store.model_sha256
    candidate_sha256 = module.model_store.candidate.sha256
  }

  create_xray_sampling_rule = var.create_xray_sampling_rule
}
