# Plans and (mocked) applies of modules/realtime_api without any AWS account or emulator.

# The mocked provider and the variables shared by the test files of this folder:
# mocks/aws.tfmock.hcl and terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
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
    condition     = aws_lambda_function.this.runtime == "python3.13" && aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "default runtime/architecture must be python3.13 on arm64"
  }
  assert {
    condition     = aws_lambda_function.this.memory_size == 3008 && aws_lambda_function.this.timeout == 29
    error_message = "default memory must be 3008 MB, the most a new account may set (timeout 29 s)"
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
    condition     = aws_lambda_function.this.reserved_concurrent_executions == -1 && length(aws_lambda_provisioned_concurrency_config.live) == 0
    error_message = "by default nothing is reserved or provisioned: a new account's reduced concurrency quota has no room for it"
  }
  assert {
    condition = aws_lambda_function.this.environment[0].variables == tomap({
      MODEL_URI                    = "s3://demo-models/models/resnet50-int8/1/"
      MODEL_CACHE_DIR              = "/tmp/model"
      MAX_IMAGE_BYTES              = "4194304"
      MAX_IMAGE_PIXELS             = "40000000"
      DEFAULT_TOP_K                = "5"
      BINARY_MEDIA_TYPES           = "image/jpeg,image/jpg,image/pjpeg,image/png,image/webp,image/bmp,image/x-bmp,image/x-ms-bmp,image/gif,application/octet-stream"
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
    condition     = length(aws_lambda_function.this.vpc_config) == 0 && length(aws_iam_role_policy.vpc_access) == 0
    error_message = "no VPC config without subnets"
  }
  assert {
    condition     = length(aws_lambda_layer_version.runtime) == 1 && aws_lambda_layer_version.runtime[0].compatible_architectures == toset(["arm64"]) && aws_lambda_layer_version.runtime[0].compatible_runtimes == toset(["python3.13"])
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
    condition     = aws_api_gateway_rest_api.this.binary_media_types == tolist(["image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/bmp", "image/x-bmp", "image/x-ms-bmp", "image/gif", "application/octet-stream"])
    error_message = "default binary media types are the image types"
  }
  assert {
    condition     = split(",", aws_lambda_function.this.environment[0].variables["BINARY_MEDIA_TYPES"]) == aws_api_gateway_rest_api.this.binary_media_types
    error_message = "the function must accept exactly the API's binary media types (one list for both)"
  }
  assert {
    condition     = aws_api_gateway_resource.predict.path_part == "predict" && aws_api_gateway_method.predict.http_method == "POST" && aws_api_gateway_method.predict.api_key_required && aws_api_gateway_method.predict.authorization == "NONE"
    error_message = "POST /predict must require an API key (no IAM authorization by default)"
  }
  assert {
    condition     = length(aws_api_gateway_api_key.this) == 1 && length(aws_api_gateway_usage_plan.this) == 1 && length(aws_api_gateway_usage_plan_key.this) == 1
    error_message = "a key-protected API has its default key in a usage plan"
  }
  assert {
    condition     = aws_api_gateway_method_settings.all.settings[0].logging_level == "ERROR" && aws_cloudwatch_log_group.api_execution[0].retention_in_days == 365 && aws_cloudwatch_log_group.api_execution[0].kms_key_id == var.kms_key_arn
    error_message = "execution logging at ERROR into a log group with retention and KMS"
  }
  assert {
    condition     = length(aws_api_gateway_account.this) == 0 && length(aws_iam_role.apigateway_cloudwatch) == 0
    error_message = "the account-wide API Gateway CloudWatch role is opt-in in the module"
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
    condition     = aws_api_gateway_usage_plan.this[0].throttle_settings[0].rate_limit == 50 && aws_api_gateway_usage_plan.this[0].quota_settings[0].limit == 100000 && aws_api_gateway_usage_plan.this[0].quota_settings[0].period == "MONTH"
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
    condition = toset([
      for o in one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common"]).statement[0].managed_rule_group_statement[0].rule_action_override :
      o.name if length(o.action_to_use[0].count) == 1
    ]) == toset(["SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY"])
    error_message = "the common rule set's body rules must count (and label) instead of blocking raw images"
  }
  assert {
    condition     = one([for r in aws_wafv2_web_acl.this[0].rule : r.priority if r.name == "aws-common-body-non-binary"]) > one([for r in aws_wafv2_web_acl.this[0].rule : r.priority if r.name == "aws-common"]) && length(one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common-body-non-binary"]).action[0].block) == 1
    error_message = "a blocking rule must follow the common rule set (labels are only visible to later rules)"
  }
  assert {
    condition = toset([
      for s in one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common-body-non-binary"]).statement[0].and_statement[0].statement[0].or_statement[0].statement :
      s.label_match_statement[0].key
    ]) == toset(["awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body", "awswaf:managed:aws:core-rule-set:GenericLFI_Body", "awswaf:managed:aws:core-rule-set:GenericRFI_Body", "awswaf:managed:aws:core-rule-set:EC2MetaDataSSRF_Body"])
    error_message = "the blocking rule must match the labels of the counted XSS, LFI, RFI and SSRF body rules"
  }
  assert {
    # The scope-down: blocked unless the Content-Type is a binary media type. JSON bodies
    # (text, possibly an attack) stay inspected; image bodies are exempt.
    condition = alltrue([
      for ct, exempt in {
        "application/json"                = false
        "application/json; charset=utf-8" = false
        "text/plain"                      = false
        ""                                = false
        "image/jpegx"                     = false
        "image/svg+xml"                   = false
        "image/jpeg"                      = true
        "image/png; charset=binary"       = true
        "application/octet-stream"        = true
        "image/x-ms-bmp"                  = true
        } : can(regex(
          one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common-body-non-binary"]).statement[0].and_statement[0].statement[1].not_statement[0].statement[0].regex_match_statement[0].regex_string,
          ct,
      )) == exempt
    ])
    error_message = "only the API's binary media types may be exempt from the body rules; JSON must stay inspected"
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
    architecture   = "x86_64"
    runtime        = "python3.13"
    memory_size    = 1769
    layer_zip_path = "tests/fixtures/x86_64/layer.zip"
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
    condition     = length(aws_iam_role_policy.vpc_access) == 1
    error_message = "a function in a VPC needs the ENI permissions"
  }
  assert {
    condition     = alltrue(flatten([for s in data.aws_iam_policy_document.vpc_access[0].statement : [for a in s.actions : startswith(a, "ec2:")]]))
    error_message = "the VPC policy grants ENI actions only (no logs: the function's own policy writes its log group)"
  }
  assert {
    condition     = toset(flatten([for s in data.aws_iam_policy_document.vpc_access[0].statement : s.actions])) == toset(["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"])
    error_message = "exactly the ENI actions the Lambda guide lists for VPC access"
  }
  assert {
    condition     = one([for s in data.aws_iam_policy_document.vpc_access[0].statement : s.resources if s.sid == "CreateInterfaceInOwnSubnets"]) == toset(["arn:aws:ec2:eu-west-1:123456789012:network-interface/*", "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef0", "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-0123456789abcdef1", "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-0123456789abcdef0"])
    error_message = "interfaces may be created only in the function's subnets with its security groups"
  }
  assert {
    condition     = alltrue([for s in data.aws_iam_policy_document.vpc_access[0].statement : s.sid == "DescribeNetwork" || !contains(tolist(s.resources), "*")])
    error_message = "only the Describe actions (no resource-level permissions) may use a * resource"
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
    condition     = length(aws_api_gateway_usage_plan.this[0].quota_settings) == 0 && aws_api_gateway_usage_plan.this[0].throttle_settings[0].rate_limit == 5 && aws_api_gateway_usage_plan.this[0].throttle_settings[0].burst_limit == 100
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
      common_rule_set_count_overrides = ["NoUserAgent_HEADER", "CrossSiteScripting_BODY"]
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
    condition     = length(one([for r in aws_wafv2_web_acl.this[0].rule : r.statement[0].managed_rule_group_statement[0].rule_action_override if r.name == "aws-common"])) == 6
    error_message = "extra count overrides ignored (or a body rule counted twice)"
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
    condition     = output.web_acl_arn != null && output.alias_name == "live" && length(aws_wafv2_web_acl.this[0].rule) == 7
    error_message = "web ACL (7 rules) and alias outputs"
  }
  assert {
    condition     = keys(output.log_group_names) == ["api_access", "api_execution", "function", "waf"]
    error_message = "log_group_names must list function, api_access, api_execution and waf"
  }
  assert {
    condition     = aws_cloudwatch_log_group.api_execution[0].name == "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/v1"
    error_message = "the execution log group must have the name API Gateway writes to"
  }
  assert {
    condition     = output.execute_api_arn == aws_lambda_permission.api.source_arn && output.authorization == { type = "NONE", api_key_required = true }
    error_message = "execute_api_arn must be the method ARN (what an IAM policy allows execute-api:Invoke on)"
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

# The layer's build manifest (layers/build.py writes <zip name>.json beside each layer zip)
# must name the function's runtime and architecture and describe the zip itself.

run "layer_built_for_python312_deploys_with_python312" {
  command = plan
  variables {
    layer_zip_path = "tests/fixtures/python3.12/layer.zip"
    runtime        = "python3.12"
  }
  assert {
    condition     = aws_lambda_function.this.runtime == "python3.12" && aws_lambda_layer_version.runtime[0].compatible_runtimes == toset(["python3.12"])
    error_message = "a layer built for python3.12 deploys with runtime python3.12"
  }
}

run "rejects_layer_built_for_another_python" {
  command = plan
  variables {
    layer_zip_path = "tests/fixtures/python3.12/layer.zip"
  }
  expect_failures = [aws_lambda_layer_version.runtime]
}

run "rejects_layer_built_for_another_architecture" {
  command = plan
  variables {
    architecture = "x86_64"
  }
  expect_failures = [aws_lambda_layer_version.runtime]
}

run "rejects_layer_that_its_manifest_does_not_describe" {
  command = plan
  variables {
    layer_zip_path = "tests/fixtures/stale/layer.zip"
  }
  expect_failures = [aws_lambda_layer_version.runtime]
}

run "layer_without_manifest_is_not_checked" {
  command = plan
  variables {
    layer_zip_path = "tests/fixtures/function.zip"
  }
  assert {
    condition     = length(aws_lambda_layer_version.runtime) == 1
    error_message = "a layer zip without a manifest beside it (not built by layers/build.py) is published as is"
  }
}

run "required_layer_manifest_present" {
  command = plan
  variables {
    require_layer_manifest = true
  }
  assert {
    condition     = length(aws_lambda_layer_version.runtime) == 1
    error_message = "a layer zip with its manifest is published when the manifest is required"
  }
}

run "rejects_layer_without_required_manifest" {
  command = plan
  variables {
    layer_zip_path         = "tests/fixtures/function.zip"
    require_layer_manifest = true
  }
  expect_failures = [aws_lambda_layer_version.runtime]
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

run "rejects_bad_rule_name_override" {
  command = plan
  variables {
    waf = {
      common_rule_set_count_overrides = ["Cross Site Scripting"]
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
    condition     = length(aws_api_gateway_rest_api.this.binary_media_types) == 0 && aws_lambda_function.this.environment[0].variables["BINARY_MEDIA_TYPES"] == ""
    error_message = "an empty list must give a JSON-only API and function"
  }
  assert {
    condition     = length([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common-body-non-binary"]) == 0 && [for o in one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common"]).statement[0].managed_rule_group_statement[0].rule_action_override : o.name] == ["SizeRestrictions_BODY"]
    error_message = "without binary bodies the body rules block as shipped (only the size rule counts)"
  }
}

run "model_pin_and_telemetry_names" {
  command = plan

  variables {
    model_sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    telemetry    = { service = "custom-predict" }
  }

  assert {
    condition     = aws_lambda_function.this.environment[0].variables["MODEL_SHA256"] == "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    error_message = "the function must get the pinned sha256"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables["POWERTOOLS_SERVICE_NAME"] == "custom-predict" && aws_lambda_function.this.environment[0].variables["POWERTOOLS_METRICS_NAMESPACE"] == "Inferstack"
    error_message = "the function must get the telemetry names"
  }
  assert {
    condition     = output.telemetry == { namespace = "Inferstack", service = "custom-predict" }
    error_message = "telemetry output must hand on exactly what the code is told to emit"
  }
}

run "model_sha256_must_be_hex" {
  command = plan
  variables {
    model_sha256 = "abc"
  }
  expect_failures = [var.model_sha256]
}

###############################################################################
# API Gateway account CloudWatch role, IAM authorization, media types
###############################################################################

run "api_gateway_account_role" {
  variables {
    create_api_gateway_account = true
  }

  assert {
    condition     = length(aws_api_gateway_account.this) == 1 && aws_api_gateway_account.this[0].cloudwatch_role_arn == aws_iam_role.apigateway_cloudwatch[0].arn && aws_api_gateway_account.this[0].reset_on_delete
    error_message = "the account's CloudWatch role must be set to the role the module creates"
  }
  assert {
    condition     = aws_iam_role_policy_attachment.apigateway_cloudwatch[0].policy_arn == "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    error_message = "the role gets the AWS managed push-to-CloudWatch policy"
  }
  assert {
    condition     = one(one(data.aws_iam_policy_document.assume_apigateway[0].statement).principals).identifiers == toset(["apigateway.amazonaws.com"])
    error_message = "only API Gateway may assume the role"
  }
  assert {
    condition     = aws_iam_role.apigateway_cloudwatch[0].name == "demo-api-cloudwatch-eu-west-1"
    error_message = "role name must carry the region (one setting per region)"
  }
  assert {
    condition     = output.api_gateway_cloudwatch_role_arn == aws_iam_role.apigateway_cloudwatch[0].arn
    error_message = "the role ARN must be an output"
  }
}

run "iam_authorization_without_keys" {
  variables {
    api = {
      authorization    = "AWS_IAM"
      api_key_required = false
      logging_level    = "OFF"
    }
  }

  assert {
    condition     = aws_api_gateway_method.predict.authorization == "AWS_IAM" && !aws_api_gateway_method.predict.api_key_required
    error_message = "POST /predict must use IAM authorization"
  }
  assert {
    condition     = length(aws_api_gateway_api_key.this) == 0 && length(aws_api_gateway_usage_plan.this) == 0 && length(aws_api_gateway_usage_plan_key.this) == 0 && output.api_key_value == null && output.api_key_id == null
    error_message = "no API key or usage plan when keys are not required"
  }
  assert {
    condition     = aws_lambda_permission.api.principal == "apigateway.amazonaws.com" && aws_lambda_permission.api.source_arn == output.execute_api_arn
    error_message = "API Gateway still invokes the alias for the method ARN, which IAM policies grant execute-api:Invoke on"
  }
  assert {
    condition     = output.authorization == { type = "AWS_IAM", api_key_required = false }
    error_message = "authorization output"
  }
  assert {
    condition     = length(aws_cloudwatch_log_group.api_execution) == 0 && aws_api_gateway_method_settings.all.settings[0].logging_level == "OFF" && !contains(keys(output.log_group_names), "api_execution")
    error_message = "logging_level OFF creates no execution log group"
  }
}

run "iam_authorization_with_keys" {
  command = plan

  variables {
    api = {
      authorization = "AWS_IAM"
    }
  }

  assert {
    condition     = aws_api_gateway_method.predict.authorization == "AWS_IAM" && aws_api_gateway_method.predict.api_key_required && length(aws_api_gateway_usage_plan.this) == 1
    error_message = "IAM authorization and API keys can be combined"
  }
}

run "rejects_api_without_authorization_or_key" {
  command = plan
  variables {
    api = {
      api_key_required = false
    }
  }
  expect_failures = [var.api]
}

run "rejects_unknown_authorization" {
  command = plan
  variables {
    api = {
      authorization = "COGNITO_USER_POOLS"
    }
  }
  expect_failures = [var.api]
}

run "rejects_wildcard_binary_type" {
  command = plan
  variables {
    api = {
      binary_media_types = ["image/*"]
    }
  }
  expect_failures = [var.api]
}

run "rejects_json_suffix_binary_type" {
  command = plan
  variables {
    api = {
      binary_media_types = ["application/problem+json"]
    }
  }
  expect_failures = [var.api]
}

run "custom_binary_media_types_reach_the_function_and_waf" {
  command = plan

  variables {
    api = {
      binary_media_types = ["image/jpeg", "image/svg+xml"]
    }
  }

  assert {
    condition     = aws_lambda_function.this.environment[0].variables["BINARY_MEDIA_TYPES"] == "image/jpeg,image/svg+xml" && aws_api_gateway_rest_api.this.binary_media_types == tolist(["image/jpeg", "image/svg+xml"])
    error_message = "the function and the API must get the same list"
  }
  assert {
    condition = alltrue([
      for ct, exempt in { "image/svg+xml" = true, "image/svgxxml" = false, "image/png" = false, "image/jpeg" = true } :
      can(regex(one([for r in aws_wafv2_web_acl.this[0].rule : r if r.name == "aws-common-body-non-binary"]).statement[0].and_statement[0].statement[1].not_statement[0].statement[0].regex_match_statement[0].regex_string, ct)) == exempt
    ])
    error_message = "the WAF exemption must follow the configured list, with regex characters escaped"
  }
}
