"""The ``cvcycle`` command line: one module per command group, each command a few lines.

Every module follows one pattern:

* its commands are module-level functions wrapped in ``common.handle_errors`` (a ``CvcycleError``
  becomes one ``error:`` line, an optional ``hint:`` line and exit code 2), so that they can be
  imported and tested;
* ``register(app)`` adds them to ``app`` and does nothing else: ``app.command(name)(fn)`` for a
  command, and for a group a ``typer.Typer(no_args_is_help=True)`` filled the same way and added
  with ``app.add_typer(group, name=..., help=...)``;
* ``main.py`` builds the ``cvcycle`` app by calling every module's ``register``. A test builds its
  own app from the modules it needs.

A command that prints data takes ``--json`` (``common.JsonOption``); the domain logic lives in
the services the commands call. ``tests/meta/test_cli_contract.py`` checks the contract.
"""
