"""Real-time classification Lambda (API Gateway REST -> POST /predict)."""
