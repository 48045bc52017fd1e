# dais launcher for Python apps, run as: python -c <this> MODE CODE MODULE OBJECT PORT BASE
# It imports MODULE:OBJECT from CODE and serves it on 127.0.0.1:PORT:
# WSGI apps (python-api, python-dash) with gunicorn when installed, else the
# standard library's threaded wsgiref server; ASGI apps (python-fastapi,
# python-shiny, python-gradio) with uvicorn. BASE is the public URL path.
import importlib
import os
import sys

mode, code, module, obj, port, base = sys.argv[1:7]
port = int(port)
base = base.rstrip("/")
sys.path.insert(0, code)
os.chdir(code)


def fail(msg):
    print("dais: " + msg, file=sys.stderr, flush=True)
    sys.exit(2)


try:
    app = importlib.import_module(module)
except Exception as e:
    fail("cannot import %r from %s: %s: %s; check metadata.entrypoint in manifest.json" % (module, code, type(e).__name__, e))
for part in obj.split("."):
    if not hasattr(app, part):
        fail("module %r has no %r; set metadata.entrypoint to \"%s:<object>\"" % (module, obj, module))
    app = getattr(app, part)

if mode in ("python-api", "python-dash"):
    if mode == "python-dash" and hasattr(app, "server"):
        app = app.server
    inner = app

    def app(environ, start_response):
        if base:
            environ["SCRIPT_NAME"] = base
        return inner(environ, start_response)

    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:
        BaseApplication = None
    if os.environ.get("DAIS_WSGI_SERVER") == "wsgiref":  # tests of the fallback
        BaseApplication = None
    if BaseApplication is not None:

        class Server(BaseApplication):
            def load_config(self):
                self.cfg.set("bind", "127.0.0.1:%d" % port)
                self.cfg.set("workers", 1)
                self.cfg.set("threads", 8)
                self.cfg.set("accesslog", None)
                self.cfg.set("graceful_timeout", 10)

            def load(self):
                return app

        sys.argv = sys.argv[:1]
        Server().run()
    else:
        import socketserver
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

        class Threaded(socketserver.ThreadingMixIn, WSGIServer):
            daemon_threads = True

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        print("dais: gunicorn is not installed; serving with wsgiref", file=sys.stderr, flush=True)
        make_server("127.0.0.1", port, app, server_class=Threaded, handler_class=Quiet).serve_forever()
else:
    try:
        import uvicorn
    except ImportError:
        fail("app mode %s needs the Python package uvicorn: add it to requirements.txt or install it with the runtime" % mode)
    uvicorn.run(app, host="127.0.0.1", port=port, root_path=base, proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", log_level="warning")
