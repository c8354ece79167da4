// The component provider: serves ha-backend's components to programs in any Pulumi language.
// Only components whose args cross languages are listed (plain strings, numbers, maps, arrays,
// Inputs); the others take a Platform object with methods and stay TypeScript-only.
import { componentProviderHost } from "@pulumi/pulumi/provider/experimental";
import { Backend } from "ha-backend/backend";

// The package is named ha-backend (its type tokens are ha-backend:index:<Class>), whatever this
// folder's package.json is called (npm refuses a package that depends on its own name).
void componentProviderHost({ name: "ha-backend", components: [Backend], dirname: __dirname });
