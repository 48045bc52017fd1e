"""A Flask (WSGI) API: GET /hello and GET /echo?msg=..."""
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/hello")
def hello():
    return jsonify(message="hello from flask")


@app.get("/echo")
def echo():
    return jsonify(msg=request.args.get("msg", ""), script_name=request.script_root)
