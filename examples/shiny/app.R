# A Shiny app that echoes its input: the round trip needs the WebSocket.
library(shiny)

ui <- fluidPage(
  titlePanel("dais shiny example"),
  textInput("msg", "Message", value = "hello"),
  textOutput("echo")
)

server <- function(input, output, session) {
  output$echo <- renderText(paste("echo:", input$msg))
}

shinyApp(ui, server)
