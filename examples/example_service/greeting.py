"""A helper module of the example service (each service imports its own modules)."""


def make_greeting(greeting, name):
    return f"{greeting}, {name}!"
