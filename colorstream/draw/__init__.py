"""`colorstream draw`: a local web page where a face sketch turns into a photo while it is drawn.

`server` serves the page in `static/` and `POST /invert`; `sketch` turns the
uploaded canvas into the model's input; `measure` holds the measurements
behind the app's defaults.
"""
