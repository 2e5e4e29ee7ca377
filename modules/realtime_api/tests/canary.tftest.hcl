# Canary rollouts of modules/realtime_api: mocked plans and applies, no AWS account or emulator.

# The mocked provider and the variables shared by the test files of this folder:
# mocks/aws.tfmock.hcl and terraform.tfvars.
mock_provider "aws" {
  source = "./tests/mocks"
}

################################################################################
# Canary rollout
################################################################################

run "canary_weight_routes_to_the_candidate_version" {
  command = apply

  variables {
    model_sha256 = "ab3c9bae6bb2699ebe9ec98b2d6fa3372588a1f295314397878ba1e0b3ccff44"
    canary = {
      model_uri    = "s3://demo-models/models/resnet50-int8/2/"
      model_sha256 = "6676485E960205118895817CA209585870D517FC25466F264077A8EBC53D21B6"
      weight       = 0.3
    }
    provisioned_concurrency = 4
  }

  override_data {
    target = data.aws_lambda_alias.current[0]
    values = { function_version = "7" }
  }
  override_data {
    target = data.aws_lambda_function.primary[0]
    values = {
      environment = [{ variables = {
        MODEL_URI    = "s3://demo-models/models/resnet50-int8/1/"
        MODEL_SHA256 = "ab3c9bae6bb2699ebe9ec98b2d6fa3372588a1f295314397878ba1e0b3ccff44"
      } }]
    }
  }
  override_resource {
    target = aws_lambda_function.this
    values = { version = "8" }
  }

  assert {
    condition     = data.aws_lambda_function.primary[0].qualifier == "7"
    error_message = "the primary version is the one the alias serves, read back by number"
  }
  assert {
    condition     = aws_lambda_alias.live.function_version == "7" && output.primary_version == "7"
    error_message = "the alias must keep serving the primary version"
  }
  assert {
    condition     = one(aws_lambda_alias.live.routing_config).additional_version_weights == tomap({ "8" = 0.3 }) && output.candidate_version == "8"
    error_message = "the alias must send canary.weight of its invocations to the version published with the candidate"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables["MODEL_URI"] == "s3://demo-models/models/resnet50-int8/2/"
    error_message = "the candidate version must be published with the candidate's MODEL_URI"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables["MODEL_SHA256"] == "6676485e960205118895817ca209585870d517fc25466f264077a8ebc53d21b6"
    error_message = "the candidate version must pin the candidate's sha256 (lower case), not the primary's"
  }
  assert {
    condition     = aws_lambda_provisioned_concurrency_config.live[0].qualifier == "live" && aws_lambda_provisioned_concurrency_config.live[0].provisioned_concurrent_executions == 4
    error_message = "provisioned concurrency stays on the alias, which spreads it over both versions"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.function.statement : (
        sort(s.resources) == sort(["arn:aws:s3:::demo-models/models/resnet50-int8/1/*", "arn:aws:s3:::demo-models/models/resnet50-int8/2/*"])
      ) if s.sid == "ReadModelBundle"
    ])
    error_message = "the role must read the primary's and the candidate's bundles (and nothing else)"
  }
}

run "canary_weight_zero_routes_nothing" {
  command = apply

  variables {
    canary = { model_uri = "s3://demo-models/models/resnet50-int8/2/", weight = 0 }
  }

  override_data {
    target = data.aws_lambda_alias.current[0]
    values = { function_version = "7" }
  }
  override_data {
    target = data.aws_lambda_function.primary[0]
    values = { environment = [{ variables = { MODEL_URI = "s3://demo-models/models/resnet50-int8/1/" } }] }
  }
  override_resource {
    target = aws_lambda_function.this
    values = { version = "8" }
  }

  assert {
    condition     = aws_lambda_alias.live.function_version == "7" && length(aws_lambda_alias.live.routing_config) == 0
    error_message = "weight 0 (a rollback) keeps the primary and routes nothing to the candidate"
  }
}

run "canary_refused_while_the_alias_serves_another_model" {
  command = plan

  variables {
    canary = { model_uri = "s3://demo-models/models/resnet50-int8/2/", weight = 0.1 }
  }

  override_data {
    target = data.aws_lambda_alias.current[0]
    values = { function_version = "7" }
  }
  override_data {
    target = data.aws_lambda_function.primary[0]
    values = { environment = [{ variables = { MODEL_URI = "s3://demo-models/models/resnet50-int8/0/" } }] }
  }

  expect_failures = [aws_lambda_alias.live]
}

run "canary_weight_one_is_refused" {
  command = plan
  variables {
    canary = { model_uri = "s3://demo-models/models/resnet50-int8/2/", weight = 1 }
  }
  expect_failures = [var.canary]
}

run "canary_negative_weight_is_refused" {
  command = plan
  variables {
    canary = { model_uri = "s3://demo-models/models/resnet50-int8/2/", weight = -0.1 }
  }
  expect_failures = [var.canary]
}

run "canary_in_another_bucket_is_refused" {
  command = plan
  variables {
    canary = { model_uri = "s3://other-models/models/resnet50-int8/2/", weight = 0.1 }
  }
  expect_failures = [var.canary]
}

run "canary_of_the_primary_model_is_refused" {
  command = plan
  variables {
    canary = { model_uri = "s3://demo-models/models/resnet50-int8/1/", weight = 0.1 }
  }
  expect_failures = [var.canary]
}

# Last: the canary runs above start from a function published with the candidate.
run "no_canary_leaves_the_alias_on_the_published_version" {
  command = apply

  assert {
    condition     = length(data.aws_lambda_alias.current) == 0 && length(data.aws_lambda_function.primary) == 0
    error_message = "without a canary the alias is not read back"
  }
  assert {
    condition     = aws_lambda_alias.live.function_version == aws_lambda_function.this.version && length(aws_lambda_alias.live.routing_config) == 0
    error_message = "without a canary the alias serves the version just published, with no routing"
  }
  assert {
    condition     = aws_lambda_function.this.environment[0].variables["MODEL_URI"] == var.model_uri && output.primary_version == aws_lambda_function.this.version && output.candidate_version == null
    error_message = "without a canary the function serves model_uri"
  }
}
