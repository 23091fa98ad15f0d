"""The command grammar and every command kobot understands."""
