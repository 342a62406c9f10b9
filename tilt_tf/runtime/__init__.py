"""Run-time pieces shared by the pipeline stages (checkpoint recovery, ...)."""
