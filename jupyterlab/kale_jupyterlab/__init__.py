"""kale's Jupyter server extension: the JupyterLab panel's backend.

It runs the `kale` binary of the environment it is installed in (the one `pip install`
of kale's wheel put beside it) on notebooks under the server's root directory, behind
Jupyter's own authentication, and relays kale's progress events (`--events -`) to the
page. It opens no port.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    return [{"module": "kale_jupyterlab"}]


def _load_jupyter_server_extension(server_app):
    # Imported here: the path rules (`paths`) stay importable without Jupyter.
    from .handlers import setup_handlers

    setup_handlers(server_app)
    server_app.log.info("kale server extension: %s", server_app.web_app.settings["kale"].binary)


# The name the classic notebook server and older jupyter_server releases look for.
load_jupyter_server_extension = _load_jupyter_server_extension


def _unload_jupyter_server_extension(server_app):
    # A run or tune the server started ends with it (Ctrl-C: kale keeps what finished).
    server_app.web_app.settings["kale"].stop_all()
