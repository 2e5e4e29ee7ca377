# What the mocked AWS provider answers in every test file of this folder
# (mock_provider "aws" { source = "./tests/mocks" }): the computed values the module's
# assertions and references need.
# https://developer.hashicorp.com/terraform/language/tests/mocking

mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
  }
}
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
