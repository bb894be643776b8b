"""The colorstream command line and the image ops and metrics shared by training and streaming."""
