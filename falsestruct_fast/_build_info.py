source_hash = "d03a2b293ab1ea8e3c36fc94878fc573f93e088cc853c6215d972c353c89bcca"
cuda_built = True
native_arch = True
