"""Demand forecasting at the supplier cutoffs: training set, model registry, champion, predictions, backtest."""
