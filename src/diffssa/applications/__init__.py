"""The paper's validations, each a function that runs end to end and returns its measured results."""
