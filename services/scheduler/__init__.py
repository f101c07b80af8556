"""The scheduler service: event-sources every run and dispatches its steps to agents."""
