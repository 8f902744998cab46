"""The service company's controller: brokers engineers' work to agents and records it.

Public surface (import from the modules; this package imports nothing so the CLI starts
fast):

    controller.setup.init_deployment(home, trust_domain, *, listen, enroll_listen,
                                     database_url, sans, now, advertise)   rmctl init
    controller.server.serve(home, *, clock) -> RunningController          tests, embedding
    controller.server.run(home)                                           rmctl serve
    controller.config.load_config(home) -> ControllerConfig
    controller.errors.ControllerError (ConfigError, DeploymentExists, StoreError, ...)

Inside: ``authz`` (one interceptor, one table), ``services`` (one module per gRPC
service), ``store`` (SQLAlchemy Core + Alembic), ``relay`` (dialing agents), ``sweeper``
(expiry), ``rules`` (pure business checks), ``ca`` (issuing certificates), ``logs``.
The controller never imports ``agent``; consent is decided on the agent.
"""
