// Entry point for `pulumi up`: every key of the returned object becomes a stack output.
import { defineStack } from "./program";

export = defineStack();
