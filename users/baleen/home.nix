# Home Manager configuration of baleen. It writes ~/.config/git/config, ~/.config/nvim/init.lua,
# ~/.bashrc and ~/.profile, which the action's `homeManager` check and tests/e2e/dev-env.sh look at.
{ pkgs, ... }:
{
  home.packages = with pkgs; [
    gcc
    gnumake
  ];

  programs.git = {
    enable = true;
    # Home Manager 25.11 renamed userName/userEmail to settings.user.{name,email}.
    settings = {
      user.name = "Baleen";
      user.email = "baleen@nixos-vm.invalid";
      init.defaultBranch = "main";
      pull.ff = "only";
    };
  };

  programs.neovim = {
    enable = true;
    defaultEditor = true; # EDITOR=nvim
    viAlias = true; # `vi` opens Neovim; `vim` stays the system's Vim
    withRuby = false;
    withPython3 = false;
    extraConfig = ''
      set number
      set expandtab shiftwidth=2 tabstop=2
    '';
  };

  programs.bash = {
    enable = true;
    shellAliases = {
      ll = "ls -l";
      gs = "git status --short --branch";
    };
  };

  home.stateVersion = "26.05";
}
