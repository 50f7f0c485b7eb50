source_hash = "6e33dcf8c6051f249fda91ffd1f0c5b25034533bdd147a593eda05c146f5f70c"
cuda_built = True
native_arch = True
