# A state written before the bundles' objects were keyed by S3 key (the primary's in
# aws_s3_object.bundle by file name, the candidate's in aws_s3_object.candidate) upgrades in
# one apply: the removed blocks forget the old instances instead of deleting their objects, and
# aws_s3_object.model writes the very same keys again. The AWS provider is mocked.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/test", user_id = "AIDTEST" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  # Known at plan time, as the bucket and the key of an existing state are.
  mock_resource "aws_s3_bucket" {
    defaults        = { id = "test-stack-models-abc", arn = "arn:aws:s3:::test-stack-models-abc" }
    override_during = plan
  }
  mock_resource "aws_kms_key" {
    defaults        = { arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555" }
    override_during = plan
  }
}

variables {
  name_prefix          = "test-stack"
  model_bundle_dir     = "../../tests/terraform/fixtures/bundle"
  candidate_bundle_dir = "../../tests/terraform/fixtures/candidate_bundle"
}

run "previous_layout" {
  state_key = "moved"
  module {
    source = "./tests/previous_layout"
  }
  variables {
    bucket      = "test-stack-models-abc"
    kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }
}

run "upgrade_writes_the_same_keys" {
  state_key = "moved"
  command   = plan

  assert {
    condition     = sort(keys(aws_s3_object.model)) == sort(values(run.previous_layout.keys))
    error_message = "the upgraded state must hold the objects of the previous one under the same S3 keys"
  }
}
