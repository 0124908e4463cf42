"""Cryptographic building blocks: key types, material, formats, KDFs, post-quantum."""
