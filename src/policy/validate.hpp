// policy: validate-azure-ad-token and validate-jwt (apim-policies.md §2, §3) over the token core
// (jwt/) and keys from OpenID discovery (a jwt::KeySource the gateway provides).
#pragma once

#include <memory>
#include <string>

#include "core/result.hpp"
#include "policy/runtime.hpp"

namespace mcpgate::policy {

core::Result<std::shared_ptr<Policy>, std::string> make_validate_azure_ad_token(
    const Element& e, const CompileEnv& env);
core::Result<std::shared_ptr<Policy>, std::string> make_validate_jwt(const Element& e,
                                                                     const CompileEnv& env);

}  // namespace mcpgate::policy
