"""Tables, bootstrap intervals, plots and the run card."""
