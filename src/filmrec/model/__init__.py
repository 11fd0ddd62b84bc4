"""The served model: ALS factors scored with numpy, packaged as an MLflow pyfunc."""
