# A Plumber API: GET /hello and GET or POST /echo.

#* Say hello
#* @serializer unboxedJSON
#* @get /hello
function() {
  list(message = "hello from plumber")
}

#* Echo back the message
#* @param msg The message to echo
#* @serializer unboxedJSON
#* @get /echo
#* @post /echo
function(msg = "") {
  list(msg = msg)
}
