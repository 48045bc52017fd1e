# A Shiny app whose session state lives in its process: the download link
# (session/<token>/download/dl) answers only on the process that holds
# the session, and says which process and session it is.
library(shiny)

# Which process this is: the pid alone may repeat (each sandbox has its
# own pid namespace); R's temporary directory is made with a random name.
proc <- paste0(Sys.getpid(), "-", basename(tempdir()))

ui <- fluidPage(
  titlePanel("dais pinned sessions"),
  textOutput("pid"),
  downloadLink("dl", "Download"),
  tags$p(tags$a(id = "jump", href = "#end", "to the end")),
  tags$p(id = "end", "the end")
)

server <- function(input, output, session) {
  output$pid <- renderText(paste0("process ", proc))
  output$dl <- downloadHandler(
    filename = "pid.txt",
    content = function(file) writeLines(paste0("process ", proc, " session ", session$token), file)
  )
}

shinyApp(ui, server)
