"""Periodic inspection: the profile the customer enables in agent.toml, its checks, the
schedule that runs them under the standing ``inspect`` scope, and the durable report of
each run's findings to the controller.

Errors::

    InspectProfileInvalid (ValueError)   the [inspect] table breaks a rule
"""
