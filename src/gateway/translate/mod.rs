//! Dialect translation between OpenAI Chat Completions and Anthropic Messages.
