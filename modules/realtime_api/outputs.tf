output "api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "api_name" {
  description = "Name of the REST API."
  value       = aws_api_gateway_rest_api.this.name
}

output "api_execution_arn" {
  description = "Execution ARN of the REST API (prefix of its method ARNs)."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "stage_name" {
  description = "Name of the API stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "stage_arn" {
  description = "ARN of the API stage (the resource the web ACL is associated with)."
  value       = aws_api_gateway_stage.this.arn
}

output "invoke_url" {
  description = "Base URL of the stage."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "predict_url" {
  description = "URL of POST /predict (send the API key in the x-api-key header; with AWS_IAM authorization, sign the request with SigV4)."
  value       = "${aws_api_gateway_stage.this.invoke_url}/${aws_api_gateway_resource.predict.path_part}"
}

output "authorization" {
  description = "Authorization of POST /predict: NONE (API key) or AWS_IAM (SigV4, service execute-api), and whether an API key is required."
  value = {
    type             = aws_api_gateway_method.predict.authorization
    api_key_required = aws_api_gateway_method.predict.api_key_required
  }
}

output "execute_api_arn" {
  description = "ARN of POST /predict on the stage: with AWS_IAM authorization, a caller's IAM policy must allow execute-api:Invoke on it. Clients sign with SigV4 for service \"execute-api\" in the stack's region, e.g. `curl --aws-sigv4 \"aws:amz:<region>:execute-api\" --user \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\"` (plus `-H \"x-amz-security-token: $AWS_SESSION_TOKEN\"` for temporary credentials)."
  value       = "${aws_api_gateway_rest_api.this.execution_arn}/${aws_api_gateway_stage.this.stage_name}/${aws_api_gateway_method.predict.http_method}/${aws_api_gateway_resource.predict.path_part}"
}

output "api_key_id" {
  description = "ID of the default API key; null when api.api_key_required = false."
  value       = one(aws_api_gateway_api_key.this[*].id)
}

output "api_key_value" {
  description = "Value of the default API key (x-api-key header); null when api.api_key_required = false."
  value       = one(aws_api_gateway_api_key.this[*].value)
  sensitive   = true
}

output "usage_plan_id" {
  description = "ID of the usage plan (attach more keys to it); null when api.api_key_required = false."
  value       = one(aws_api_gateway_usage_plan.this[*].id)
}

output "binary_media_types" {
  description = "Binary media types of the API, also the image Content-Types the function accepts (BINARY_MEDIA_TYPES)."
  value       = aws_api_gateway_rest_api.this.binary_media_types
}

output "function_name" {
  description = "Name of the real-time function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the real-time function (unqualified)."
  value       = aws_lambda_function.this.arn
}

output "function_version" {
  description = "Version published by the last deployment: the one `live` points to, or during a canary the candidate."
  value       = aws_lambda_function.this.version
}

output "function_role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.function.arn
}

output "alias_name" {
  description = "Name of the alias API Gateway invokes."
  value       = aws_lambda_alias.live.name
}

output "alias_arn" {
  description = "ARN of the alias API Gateway invokes."
  value       = aws_lambda_alias.live.arn
}

output "layer_arn" {
  description = "ARN (with version) of the runtime layer the function uses: the published one or var.layer_arn."
  value       = local.layer_arn
}

output "log_group_names" {
  description = "Log groups of the module by purpose: function, api_access, api_execution (unless api.logging_level = OFF) and waf (with WAF logging)."
  value       = local.log_group_names
}

output "api_gateway_cloudwatch_role_arn" {
  description = "ARN of the API Gateway account CloudWatch role the module set (create_api_gateway_account); null otherwise."
  value       = one(aws_api_gateway_account.this[*].cloudwatch_role_arn)
}

output "web_acl_arn" {
  description = "ARN of the web ACL, null when enable_waf = false."
  value       = var.enable_waf ? aws_wafv2_web_acl.this[0].arn : null
}

output "telemetry" {
  description = "Namespace and `service` dimension of the function's EMF metrics: pass to modules/observability (`realtime_metrics`, `metric_namespace`)."
  value       = var.telemetry
}

output "primary_version" {
  description = "Version the `live` alias serves by default: the one published by the last deployment, or during a canary the primary version it already served (kept by number)."
  value       = aws_lambda_alias.live.function_version
}

output "candidate_version" {
  description = "Version of the canary's candidate (published from the function's configuration, which carries the candidate's model); null without a canary."
  value       = local.canary_enabled ? aws_lambda_function.this.version : null
}
