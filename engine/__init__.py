"""tuneup's local fine-tuning engine: an OpenAI-compatible server that trains LoRA adapters.

It stands alone: nothing here imports bot/, adapters/ or storage/.
"""
