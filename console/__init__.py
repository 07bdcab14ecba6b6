"""The security team's web console: alert queue, cases, verdicts to `labels`, users and roles, audit trail."""
