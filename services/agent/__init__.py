"""The agent service: runs on each server, pulls the step tasks of its groups, runs them."""
