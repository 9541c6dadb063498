"""The LLM gateway: one entry point speaking the OpenAI and Ollama APIs."""
