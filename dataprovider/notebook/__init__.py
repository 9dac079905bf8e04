"""What a notebook adds to the client: progress reporters, charts, the live chart, the launcher.

* :mod:`~dataprovider.notebook.progress`: batch progress as an ipywidget or as text;
* :mod:`~dataprovider.notebook.charts`: static candlestick and comparison charts (plotly);
* :mod:`~dataprovider.notebook.live_chart`: a candlestick that follows live bars;
* :mod:`~dataprovider.notebook.launcher`: starts a server in the background when none answers.

Needs the ``[notebook]`` extra (ipywidgets, anywidget, plotly) for widgets and charts;
progress falls back to text without ipywidgets.
"""
