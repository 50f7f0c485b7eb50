source_hash = "89e07bb001bd6e8e2861df161480c943188a69ac77ed9ca147f3ea19402a006c"
cuda_built = True
native_arch = True
