"""Errors a user can fix. The CLI prints their message as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""


class ConfigError(UserError):
    """A configuration key, type or value is invalid."""


class UnknownGameError(UserError):
    """A game name that no supported family knows."""
