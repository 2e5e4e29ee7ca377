# Plans and (mocked) applies of modules/realtime_api without any AWS account or emulator.

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
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock"
    }
  }
  mock_resource "aws_api_gateway_rest_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123"
    }
  }
  mock_resource "aws_api_gateway_stage" {
    defaults = {
      arn        = "arn:aws:apigateway:eu-west-1::/restapis/abc123/stages/v1"
      invoke_url = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"
    }
  }
  mock_resource "aws_lambda_layer_version" {
    defaults = {
      arn = "arn:aws:lambda:eu-west-1:123456789012:layer:demo-runtime-arm64:1"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::123456789012:role/demo-predict"
    }
  }
  mock_resource "aws_wafv2_regex_pattern_set" {
    defaults = {
      arn = "arn:aws:wafv2:eu-west-1:123456789012:regional/regexpatternset/demo/11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_lambda_alias" {
    defaults = {
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:demo-predict:live/invocations"
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:demo-predict:live"
    }
  }
  mock_resource "aws_wafv2_web_acl" {
    defaults = {
      arn = "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/demo-api/11111111-2222-3333-4444-555555555555"
    }
  }
}

variables {
  name_prefix       = "demo"
  function_zip_path = "tests/fixtures/function.zip"
  layer_zip_path    = "tests/fixtures/layer.zip"
  model_uri         = "s3://demo-models/models/resnet50-int8/1/"
  model_bucket_arn  = "arn:aws:s3:::demo-models"
  kms_key_arn       = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  tags              = { Project = "inferstack", Env = "test" }
}

run "defaults" {
  command = plan

  assert {
    condition     = aws_lambda_function.this.function_name == "demo-predict"
    error_message = "function name must be <name_prefix>-predict"
  }
  assert {
    condition     = aws_lambda_function.this.handler == "inferstack_predict.handler.lambda_handler"
    error_message = "wrong handler"
  }
  assert {
    condition     = aws_lambda_function.this.runtime == "python3.12" && aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "default runtime/architecture must be python3.12 on arm64"
  }
  assert {
    condition     = aws_lambda_function.this.memory_size == 3538 && aws_lambda_function.this.timeout == 29
    error_message = "default memory (2 vCPU) or timeout changed"
  }
  assert {
    condition     = aws_lambda_function.this.publish == true && aws_lambda_alias.live.name == "live"
    error_message = "the function must publish versions behind the live alias"
  }
  assert {
    condition     = aws_lambda_function.this.source_code_hash == filebase64sha256("tests/fixtures/function.zip")
    error_message = "source_code_hash must follow the zip"
  }
  assert {
    condition     = aws_lambda_function.this.reserved_concurrent_executions == 20
    error_message = "default reserved concurrency must be 20"
  }
  assert {
    condition = aws_lambda_function.this.environment[0].variables == tomap({
      MODEL_URI                    = "s3://demo-models/models/resnet50-int8/1/"
      MODEL_CACHE_DIR              = "/tmp/model"
      MAX_IMAGE_BYTES              = "4194304"
      MAX_IMAGE_PIXELS             = "40000000"
      DEFAULT_TOP_K                = "5"
      POWERTOOLS_SERVICE_NAME      = "inferstack-predict"
      POWERTOOLS_METRICS_NAMESPACE = "Inferstack"
      LOG_LEVEL                    = "INFO"
    })
    error_message = "function environment differs from the contract"
  }
  assert {
    condition     = aws_lambda_function.this.tracing_config[0].mode == "Active" && aws_api_gateway_stage.this.xray_tracing_enabled
    error_message = "X-Ray must be active by default"
  }
  assert {
    condition     = length(aws_lambda_function.this.vpc_config) == 0 && length(aws_iam_role_policy_attachment.vpc_access) == 0
    error_message = "no VPC config without subnets"
  }
  assert {
    condition     = length(aws_lambda_layer_version.runtime) == 1 && aws_lambda_layer_version.runtime[0].compatible_architectures == toset(["arm64"]) && aws_lambda_layer_version.runtime[0].compatible_runtimes == toset(["python3.12"])
    error_message = "the layer must be published for the function's runtime and architecture"
  }
  assert {
    condition     = length(aws_lambda_provisioned_concurrency_config.live) == 0
    error_message = "provisioned concurrency must be off by default"
  }
  assert {
    condition     = aws_cloudwatch_log_group.function.name == "/aws/lambda/demo-predict" && aws_cloudwatch_log_group.function.retention_in_days == 365 && aws_cloudwatch_log_group.function.kms_key_id == var.kms_key_arn
    error_message = "function log group must be /aws/lambda/<name> with retention and KMS"
  }
  assert {
    condition     = aws_api_gateway_rest_api.this.endpoint_configuration[0].types == tolist(["REGIONAL"])
    error_message = "the REST API must be regional"
  }
  assert {
    condition     = aws_api_gateway_rest_api.this.binary_media_types == tolist(["image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "application/octet-stream"])
    error_message = "default binary media types are the image types"
  }
  assert {
    condition     = aws_api_gateway_resource.predict.path_part == "predict" && aws_api_gateway_method.predict.http_method == "POST" && aws_api_gateway_method.predict.api_key_required
    error_message = "POST /predict must require an API key"
  }
  assert {
    condition     = aws_api_gateway_method.predict.request_parameters["method.request.header.Content-Type"] && aws_api_gateway_request_validator.parameters.validate_request_parameters
    error_message = "Content-Type must be required and validated"
  }
  assert {
    condition     = aws_api_gateway_integration.predict.type == "AWS_PROXY" && aws_api_gateway_integration.predict.integration_http_method == "POST"
    error_message = "Lambda proxy integration expected"
  }
  assert {
    condition     = aws_api_gateway_stage.this.stage_name == "v1" && can(jsondecode(aws_api_gateway_stage.this.access_log_settings[0].format).requestId)
    error_message = "stage v1 with JSON access logs expected"
  }
  assert {
    condition     = aws_api_gateway_method_settings.all.settings[0].throttling_rate_limit == 50 && aws_api_gateway_method_settings.all.settings[0].throttling_burst_limit == 100 && aws_api_gateway_method_settings.all.settings[0].metrics_enabled
    error_message = "stage throttling/metrics defaults changed"
  }
  assert {
    condition     = aws_api_gateway_usage_plan.this.throttle_settings[0].rate_limit == 50 && aws_api_gateway_usage_plan.this.quota_settings[0].limit == 100000 && aws_api_gateway_usage_plan.this.quota_settings[0].period == "MONTH"
    error_message = "usage plan throttling/quota defaults changed"
  }
  assert {
    condition     = length(aws_wafv2_web_acl.this) == 1 && length(aws_wafv2_web_acl_association.this) == 1 && length(aws_wafv2_web_acl_logging_configuration.this) == 1
    error_message = "WAF, its association and logging are on by default"
  }
  assert {
    condition     = aws_wafv2_web_acl.this[0].scope == "REGIONAL" && length(aws_wafv2_web_acl.this[0].association_config) == 0
    error_message = "regional web ACL with the default (16 KB) inspection window expected"
  }
  assert {
    condition     = [for r in aws_wafv2_web_acl.this[0].rule : r.name if r.priority == 0][0] == "rate-limit-per-ip"
    error_message = "rate limit rule must come first"
  }
  assert {
    condition = anytrue([
      for o in one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-anonymous-ip"]).statement[0].managed_rule_group_statement[0].rule_action_override :
      o.name == "HostingProviderIPList" && length(o.action_to_use[0].count) == 1
    ])
    error_message = "anonymous IP list is on by default, hosting providers only counted"
  }
  assert {
    condition = anytrue([
      for o in one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common"]).statement[0].managed_rule_group_statement[0].rule_action_override :
      o.name == "SizeRestrictions_BODY" && length(o.action_to_use[0].count) == 1
    ])
    error_message = "SizeRestrictions_BODY must be overridden to count"
  }
  assert {
    condition     = toset([for r in aws_wafv2_regex_pattern_set.content_length_over_limit[0].regular_expression : r.regex_string]) == toset(["^0*[1-9][0-9]{7,}$", "^0*[7-9][0-9]{6}$", "^0*6[3-9][0-9]{5}$", "^0*629[2-9][0-9]{3}$", "^0*6291[5-9][0-9]{2}$", "^0*62914[6-9][0-9]{1}$", "^0*629145[7-9]$"])
    error_message = "Content-Length patterns must match exactly the numbers above 6291456"
  }
  assert {
    condition     = aws_cloudwatch_log_group.waf[0].name == "aws-waf-logs-demo-api"
    error_message = "WAF log group must start with aws-waf-logs-"
  }
  assert {
    condition     = aws_lambda_function.this.tags["Project"] == "inferstack" && aws_api_gateway_rest_api.this.tags["Env"] == "test" && aws_wafv2_web_acl.this[0].tags["Project"] == "inferstack"
    error_message = "tags must reach the resources"
  }
}

run "iam_is_scoped" {
  # Mocked apply, so that the log group ARN in the policy is known.

  # The real policy document is rendered by the mocked data source, so check its inputs.
  assert {
    condition     = one([for s in data.aws_iam_policy_document.function.statement : s.resources if s.sid == "ReadModelBundle"]) == toset(["arn:aws:s3:::demo-models/models/resnet50-int8/1/*"])
    error_message = "the function may read only the model prefix"
  }
  assert {
    condition     = tolist(one([for s in data.aws_iam_policy_document.function.statement : s.condition if s.sid == "DecryptModelViaS3"]))[0].values == tolist(["s3.eu-west-1.amazonaws.com"])
    error_message = "kms:Decrypt must be limited to S3 in the stack's region"
  }
  assert {
    condition     = alltrue(flatten([for s in data.aws_iam_policy_document.function.statement : [for a in s.actions : a != "*" && !endswith(a, ":*")]]))
    error_message = "no wildcard actions"
  }
  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.function.statement : s.sid == "XRayWrite" || !contains(tolist(s.resources), "*")])
    error_message = "only X-Ray may use a * resource"
  }
}

run "bucket_root_model" {
  command = plan

  variables {
    model_uri = "s3://demo-models/"
  }

  assert {
    condition     = one([for s in data.aws_iam_policy_document.function.statement : s.resources if s.sid == "ReadModelBundle"]) == toset(["arn:aws:s3:::demo-models/*"])
    error_message = "a bucket-root model reads the whole bucket"
  }
}

run "bring_your_own_layer" {
  command = plan

  variables {
    layer_zip_path = null
    layer_arn      = "arn:aws:lambda:eu-west-1:123456789012:layer:deps:7"
  }

  assert {
    condition     = length(aws_lambda_layer_version.runtime) == 0
    error_message = "no layer is published when layer_arn is given"
  }
  assert {
    condition     = aws_lambda_function.this.layers == tolist(["arn:aws:lambda:eu-west-1:123456789012:layer:deps:7"])
    error_message = "the function must use the given layer"
  }
}

run "x86_64_python313" {
  command = plan

  variables {
    architecture = "x86_64"
    runtime      = "python3.13"
    memory_size  = 1769
  }

  assert {
    condition     = aws_lambda_function.this.architectures == tolist(["x86_64"]) && aws_lambda_function.this.runtime == "python3.13" && aws_lambda_function.this.memory_size == 1769
    error_message = "architecture/runtime/memory switches ignored"
  }
  assert {
    condition     = aws_lambda_layer_version.runtime[0].layer_name == "demo-runtime-x86-64" && aws_lambda_layer_version.runtime[0].compatible_architectures == toset(["x86_64"])
    error_message = "layer must follow the architecture"
  }
}

run "in_vpc_with_provisioned_concurrency" {
  command = plan

  variables {
    subnet_ids              = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    security_group_ids      = ["sg-0123456789abcdef0"]
    reserved_concurrency    = 10
    provisioned_concurrency = 2
  }

  assert {
    condition     = aws_lambda_function.this.vpc_config[0].subnet_ids == toset(["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]) && aws_lambda_function.this.vpc_config[0].security_group_ids == toset(["sg-0123456789abcdef0"])
    error_message = "VPC config must use the given subnets and security groups"
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.vpc_access) == 1
    error_message = "a function in a VPC needs the ENI permissions"
  }
  assert {
    condition     = aws_lambda_provisioned_concurrency_config.live[0].provisioned_concurrent_executions == 2 && aws_lambda_provisioned_concurrency_config.live[0].qualifier == "live"
    error_message = "provisioned concurrency belongs on the live alias"
  }
}

run "waf_and_tracing_off" {
  command = plan

  variables {
    enable_waf           = false
    enable_xray_tracing  = false
    reserved_concurrency = -1
    api = {
      quota_limit    = 0
      key_rate_limit = 5
    }
  }

  assert {
    condition     = length(aws_wafv2_web_acl.this) == 0 && length(aws_wafv2_web_acl_association.this) == 0 && length(aws_wafv2_regex_pattern_set.content_length_over_limit) == 0 && length(aws_cloudwatch_log_group.waf) == 0 && length(aws_wafv2_web_acl_logging_configuration.this) == 0
    error_message = "enable_waf = false must create no WAF resources"
  }
  assert {
    condition     = aws_lambda_function.this.tracing_config[0].mode == "PassThrough" && !aws_api_gateway_stage.this.xray_tracing_enabled
    error_message = "X-Ray switch ignored"
  }
  assert {
    condition     = length([for s in data.aws_iam_policy_document.function.statement : s if s.sid == "XRayWrite"]) == 0
    error_message = "no X-Ray permissions without tracing"
  }
  assert {
    condition     = length(aws_api_gateway_usage_plan.this.quota_settings) == 0 && aws_api_gateway_usage_plan.this.throttle_settings[0].rate_limit == 5 && aws_api_gateway_usage_plan.this.throttle_settings[0].burst_limit == 100
    error_message = "quota 0 must drop the quota; per-key rate must override the stage rate"
  }
  assert {
    condition     = aws_lambda_function.this.reserved_concurrent_executions == -1
    error_message = "reserved concurrency -1 must pass through"
  }
}

run "waf_small_body_limit_and_larger_window" {
  command = plan

  variables {
    waf = {
      max_body_bytes                  = 8192
      body_inspection_limit           = "KB_64"
      rate_limit                      = 100
      rate_limit_window_seconds       = 60
      enable_logging                  = false
      enable_anonymous_ip_list        = false
      common_rule_set_count_overrides = ["SizeRestrictions_BODY", "CrossSiteScripting_BODY"]
    }
  }

  assert {
    condition     = aws_wafv2_web_acl.this[0].association_config[0].request_body[0].api_gateway[0].default_size_inspection_limit == "KB_64"
    error_message = "a larger inspection window must be written to the association config"
  }
  assert {
    condition     = toset([for r in aws_wafv2_regex_pattern_set.content_length_over_limit[0].regular_expression : r.regex_string]) == toset(["^0*[1-9][0-9]{4,}$", "^0*[9-9][0-9]{3}$", "^0*8[2-9][0-9]{2}$", "^0*819[3-9]$"])
    error_message = "Content-Length patterns must match exactly the numbers above 8192"
  }
  assert {
    condition     = one([for r in aws_wafv2_web_acl.this[0].rule : r.statement[0].rate_based_statement[0] if r.name == "rate-limit-per-ip"]).limit == 100
    error_message = "rate limit ignored"
  }
  assert {
    condition     = length(one([for r in aws_wafv2_web_acl.this[0].rule : r.statement[0].managed_rule_group_statement[0].rule_action_override if r.name == "aws-common"])) == 2
    error_message = "extra count overrides ignored"
  }
  assert {
    condition     = length(aws_wafv2_web_acl_logging_configuration.this) == 0 && length(aws_cloudwatch_log_group.waf) == 0
    error_message = "WAF logging switch ignored"
  }
  assert {
    condition     = length([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-anonymous-ip"]) == 0
    error_message = "anonymous IP list switch ignored"
  }
}

run "apply_outputs" {
  # Mocked apply: computed values come from the mock provider.
  assert {
    condition     = output.predict_url == "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/predict"
    error_message = "predict_url must be the stage URL + /predict"
  }
  assert {
    condition     = aws_lambda_permission.api.source_arn == "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/POST/predict" && aws_lambda_permission.api.qualifier == "live"
    error_message = "the invoke permission must be scoped to the method ARN and the alias"
  }
  assert {
    condition     = output.layer_arn == "arn:aws:lambda:eu-west-1:123456789012:layer:demo-runtime-arm64:1"
    error_message = "layer_arn output must be the published layer"
  }
  assert {
    condition     = output.web_acl_arn != null && output.alias_name == "live" && length(aws_wafv2_web_acl.this[0].rule) == 6
    error_message = "web ACL (6 rules) and alias outputs"
  }
  assert {
    condition     = keys(output.log_group_names) == ["api_access", "function", "waf"]
    error_message = "log_group_names must list function, api_access and waf"
  }
}

###############################################################################
# Validation failures
###############################################################################

run "rejects_bad_name_prefix" {
  command = plan
  variables {
    name_prefix = "Demo_"
  }
  expect_failures = [var.name_prefix]
}

run "rejects_two_layers" {
  command = plan
  variables {
    layer_arn = "arn:aws:lambda:eu-west-1:123456789012:layer:deps:7"
  }
  expect_failures = [var.layer_zip_path]
}

run "rejects_no_layer" {
  command = plan
  variables {
    layer_zip_path = null
  }
  expect_failures = [var.layer_zip_path]
}

run "rejects_unversioned_layer_arn" {
  command = plan
  variables {
    layer_zip_path = null
    layer_arn      = "arn:aws:lambda:eu-west-1:123456789012:layer:deps"
  }
  expect_failures = [var.layer_arn]
}

run "rejects_non_zip_function" {
  command = plan
  variables {
    function_zip_path = "tests/fixtures/function.tar"
  }
  expect_failures = [var.function_zip_path]
}

run "rejects_bad_architecture" {
  command = plan
  variables {
    architecture = "arm"
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

run "rejects_tiny_memory" {
  command = plan
  variables {
    memory_size = 128
  }
  expect_failures = [var.memory_size]
}

run "rejects_bad_timeout" {
  command = plan
  variables {
    timeout = 901
  }
  expect_failures = [var.timeout]
}

run "rejects_model_uri_without_trailing_slash" {
  command = plan
  variables {
    model_uri = "s3://demo-models/models/resnet50"
  }
  expect_failures = [var.model_uri]
}

run "rejects_bucket_mismatch" {
  command = plan
  variables {
    model_bucket_arn = "arn:aws:s3:::other-bucket"
  }
  expect_failures = [var.model_bucket_arn]
}

run "rejects_bad_kms_arn" {
  command = plan
  variables {
    kms_key_arn = "alias/inferstack"
  }
  expect_failures = [var.kms_key_arn]
}

run "rejects_subnets_without_security_groups" {
  command = plan
  variables {
    subnet_ids = ["subnet-0123456789abcdef0"]
  }
  expect_failures = [var.security_group_ids]
}

run "rejects_bad_subnet_id" {
  command = plan
  variables {
    subnet_ids         = ["10.0.0.0/24"]
    security_group_ids = ["sg-0123456789abcdef0"]
  }
  expect_failures = [var.subnet_ids]
}

run "rejects_provisioned_over_reserved" {
  command = plan
  variables {
    reserved_concurrency    = 2
    provisioned_concurrency = 3
  }
  expect_failures = [var.provisioned_concurrency]
}

run "rejects_reserved_below_minus_one" {
  command = plan
  variables {
    reserved_concurrency = -2
  }
  expect_failures = [var.reserved_concurrency]
}

run "rejects_image_limit_over_lambda_payload" {
  command = plan
  variables {
    max_image_bytes = 10485760
  }
  expect_failures = [var.max_image_bytes]
}

run "rejects_top_k_over_20" {
  command = plan
  variables {
    default_top_k = 21
  }
  expect_failures = [var.default_top_k]
}

run "rejects_bad_log_level" {
  command = plan
  variables {
    log_level = "TRACE"
  }
  expect_failures = [var.log_level]
}

run "rejects_bad_retention" {
  command = plan
  variables {
    log_retention_days = 2
  }
  expect_failures = [var.log_retention_days]
}

run "rejects_json_as_binary" {
  command = plan
  variables {
    api = {
      binary_media_types = ["*/*", "application/json"]
    }
  }
  expect_failures = [var.api]
}

run "rejects_bad_quota_period" {
  command = plan
  variables {
    api = {
      quota_period = "YEAR"
    }
  }
  expect_failures = [var.api]
}

run "rejects_bad_stage_name" {
  command = plan
  variables {
    api = {
      stage_name = "v-1"
    }
  }
  expect_failures = [var.api]
}

run "rejects_zero_throttle" {
  command = plan
  variables {
    api = {
      throttling_rate_limit = 0
    }
  }
  expect_failures = [var.api]
}

run "rejects_waf_rate_limit_too_low" {
  command = plan
  variables {
    waf = {
      rate_limit = 5
    }
  }
  expect_failures = [var.waf]
}

run "rejects_waf_bad_window" {
  command = plan
  variables {
    waf = {
      rate_limit_window_seconds = 30
    }
  }
  expect_failures = [var.waf]
}

run "rejects_waf_body_limit_over_api_gateway_max" {
  command = plan
  variables {
    waf = {
      max_body_bytes = 20000000
    }
  }
  expect_failures = [var.waf]
}

run "rejects_waf_bad_inspection_limit" {
  command = plan
  variables {
    waf = {
      body_inspection_limit = "KB_8"
    }
  }
  expect_failures = [var.waf]
}

run "rejects_waf_blocking_image_bodies" {
  command = plan
  variables {
    waf = {
      common_rule_set_count_overrides = []
    }
  }
  expect_failures = [var.waf]
}

run "json_only_api" {
  command = plan

  variables {
    api = {
      binary_media_types = []
    }
  }

  assert {
    condition     = length(aws_api_gateway_rest_api.this.binary_media_types) == 0
    error_message = "an empty list must give a JSON-only API"
  }
}
