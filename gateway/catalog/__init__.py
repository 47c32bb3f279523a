"""The contract catalog over HTTP: message types and their JSON Schemas by major version,
connector views and the AsyncAPI document of the webhooks (`/v1/contracts`, `/asyncapi.json`)."""
