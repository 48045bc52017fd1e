"""A FastAPI (ASGI) API: GET /hello and GET /echo?msg=..."""
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
def hello():
    return {"message": "hello from fastapi"}


@app.get("/echo")
def echo(msg: str = ""):
    return {"msg": msg}
