"""Agentless devices (switches, appliances) reached by the agent over SSH.

The customer lists each device, its pinned host key, its credentials and the commands
engineers may run in agent.toml (:mod:`agent.devices.policy`); the credentials never
leave the agent. :mod:`agent.devices.operations` offers ``device.list`` and
``device.exec`` (scope ``device.exec``); :mod:`agent.devices.ssh` runs a command.
"""
