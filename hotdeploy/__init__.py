"""Pure decisions of hotdeploy: no I/O here, unit-tested without Prefect."""
